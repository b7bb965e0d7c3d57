//! Loads a BERT checkpoint (`model.safetensors`, PyTorch names) into the layouts the forward
//! pass wants: dense weights transposed to `inputs × outputs` row-major (GEMM's right-hand
//! side, rows contiguous), and Q, K, V fused into one `hidden × 3·hidden` projection.

use safetensors::{Dtype, SafeTensors};

use crate::{config::Config, ops::Norm};

/// y = x·weight + bias, with `weight` row-major `inputs × outputs`.
#[derive(Debug)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

#[derive(Debug)]
pub struct Layer {
    /// Columns: all heads' queries, then keys, then values.
    pub qkv: Dense,
    pub attention_out: Dense,
    pub attention_norm: Norm,
    pub ffn_in: Dense,
    pub ffn_out: Dense,
    pub ffn_norm: Norm,
}

#[derive(Debug)]
pub struct Weights {
    /// `vocab_size × hidden`.
    pub word: Vec<f32>,
    /// `max_position_embeddings × hidden`.
    pub position: Vec<f32>,
    /// Row 0 of the token-type table: single-sentence input has type 0 everywhere.
    pub token_type0: Vec<f32>,
    pub embedding_norm: Norm,
    pub layers: Vec<Layer>,
}

struct Reader<'a> {
    tensors: SafeTensors<'a>,
    /// `""` or `"bert."`: checkpoints saved from `BertForX` models nest the encoder.
    prefix: &'static str,
}

impl Reader<'_> {
    /// The tensor `name` as f32, checking its shape.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|e| format!("{full}: {e}"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("{full}: dtype {:?}, expected F32", view.dtype()));
        }
        if view.shape() != shape {
            return Err(format!(
                "{full}: shape {:?}, expected {shape:?}",
                view.shape()
            ));
        }
        // safetensors stores little-endian; decoding by bytes needs no alignment either.
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// A PyTorch `Linear` (`weight` is `outputs × inputs`), transposed.
    fn dense(&self, name: &str, inputs: usize, outputs: usize) -> Result<Dense, String> {
        let weight = self.get(&format!("{name}.weight"), &[outputs, inputs])?;
        Ok(Dense {
            weight: transpose(&weight, outputs, inputs),
            bias: self.get(&format!("{name}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    fn norm(&self, name: &str, width: usize, eps: f32) -> Result<Norm, String> {
        Ok(Norm {
            gamma: self.get(&format!("{name}.weight"), &[width])?,
            beta: self.get(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }
}

impl Weights {
    pub fn load(config: &Config, safetensors: &[u8]) -> Result<Self, String> {
        let tensors = SafeTensors::deserialize(safetensors).map_err(|e| e.to_string())?;
        let prefix = if tensors.tensor("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else {
            "bert."
        };
        let r = Reader { tensors, prefix };
        let h = config.hidden_size;
        // PyTorch's LayerNorm keeps eps as a Python float but adds it in f32.
        let eps = config.layer_norm_eps as f32;
        let token_types = r.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    qkv: fuse_columns(&[
                        r.dense(&format!("{p}.attention.self.query"), h, h)?,
                        r.dense(&format!("{p}.attention.self.key"), h, h)?,
                        r.dense(&format!("{p}.attention.self.value"), h, h)?,
                    ]),
                    attention_out: r.dense(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: r.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                    ffn_in: r.dense(
                        &format!("{p}.intermediate.dense"),
                        h,
                        config.intermediate_size,
                    )?,
                    ffn_out: r.dense(&format!("{p}.output.dense"), config.intermediate_size, h)?,
                    ffn_norm: r.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            word: r.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: r.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type0: token_types[..h].to_vec(),
            embedding_norm: r.norm("embeddings.LayerNorm", h, eps)?,
            layers,
        })
    }
}

/// `rows × cols` row-major → `cols × rows` row-major.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate().take(rows) {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// Side-by-side concatenation of dense layers with the same inputs: one GEMM computes all.
fn fuse_columns(parts: &[Dense]) -> Dense {
    let inputs = parts.first().map_or(0, |p| p.inputs);
    let outputs = parts.iter().map(|p| p.outputs).sum();
    let mut weight = Vec::with_capacity(inputs * outputs);
    for i in 0..inputs {
        for p in parts {
            weight.extend_from_slice(&p.weight[i * p.outputs..(i + 1) * p.outputs]);
        }
    }
    Dense {
        weight,
        bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
        inputs,
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 × 3
        assert_eq!(transpose(&m, 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn fused_columns_keep_each_part_in_its_block() {
        let part = |v: f32, outputs: usize| Dense {
            weight: vec![v; 2 * outputs],
            bias: vec![v; outputs],
            inputs: 2,
            outputs,
        };
        let fused = fuse_columns(&[part(1.0, 2), part(2.0, 1), part(3.0, 2)]);
        assert_eq!(fused.outputs, 5);
        assert_eq!(
            fused.weight,
            [1.0, 1.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 3.0, 3.0]
        );
        assert_eq!(fused.bias, [1.0, 1.0, 2.0, 3.0, 3.0]);
    }
}
