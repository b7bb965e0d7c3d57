//! The part of a Hugging Face `config.json` a BERT encoder forward pass depends on.

use serde::Deserialize;

/// Shape and numerics of a BERT encoder (`"model_type": "bert"`).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

impl Config {
    /// Parses and validates `config.json`: only what this forward pass implements is accepted
    /// (exact GELU, absolute positions), so a different model fails at load, not with wrong
    /// vectors.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only the exact \"gelu\")",
                self.hidden_act
            ));
        }
        if let Some(kind) = &self.position_embedding_type
            && kind != "absolute"
        {
            return Err(format!("position_embedding_type {kind:?} is not supported"));
        }
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(format!("invalid layer_norm_eps {}", self.layer_norm_eps));
        }
        Ok(())
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"hidden_act": "gelu", "hidden_size": 384, "intermediate_size": 1536,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
        "num_attention_heads": 12, "num_hidden_layers": 6, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn minilm_config_is_accepted() {
        let config = Config::from_json(MINILM).unwrap();
        assert_eq!(config.head_size(), 32);
        assert_eq!(config.num_hidden_layers, 6);
    }

    #[test]
    fn unsupported_models_are_refused_at_load() {
        for (from, to) in [
            (r#""gelu""#, r#""gelu_new""#),
            (r#""absolute""#, r#""relative_key""#),
            (
                r#""num_attention_heads": 12"#,
                r#""num_attention_heads": 7"#,
            ),
            (r#""hidden_size": 384"#, r#""hidden_size": 0"#),
        ] {
            let text = MINILM.replace(from, to);
            assert!(Config::from_json(&text).is_err(), "accepted {to}");
        }
    }
}
