//! How a call's sequences are split into groups, each one forward pass on one thread.

use std::ops::Range;

/// Tokens per group at most (unless one sequence is longer). Large enough that every dense
/// layer is an efficient GEMM, small enough that a group's activations (~17 KB per token)
/// stay modest; measured with `make bench-embed`.
pub const MAX_GROUP_TOKENS: usize = 1024;

/// Consecutive ranges of `lengths` with balanced token counts: as few groups as
/// `MAX_GROUP_TOKENS` allows, rounded up to a multiple of `threads` so that every thread gets
/// an equal share. A sequence goes to the group its middle token falls in.
pub fn groups(lengths: &[usize], threads: usize) -> Vec<Range<usize>> {
    let total: usize = lengths.iter().sum();
    if lengths.is_empty() {
        return Vec::new();
    }
    let threads = threads.max(1);
    let wanted = total
        .div_ceil(MAX_GROUP_TOKENS)
        .max(1)
        .next_multiple_of(threads);
    let count = wanted.min(lengths.len());
    let mut out: Vec<Range<usize>> = Vec::with_capacity(count);
    let mut before = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let middle = before + len / 2;
        // total > 0 here unless every sequence is empty, in which case one group does.
        let group = (middle * count)
            .checked_div(total)
            .unwrap_or(0)
            .min(count - 1);
        let started = out.len() > group;
        match out.last_mut() {
            Some(last) if started => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
        before += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(groups: &[Range<usize>], n: usize) {
        let mut next = 0;
        for g in groups {
            assert_eq!(g.start, next, "{groups:?}");
            assert!(g.end > g.start, "{groups:?}");
            next = g.end;
        }
        assert_eq!(next, n, "{groups:?}");
    }

    #[test]
    fn groups_cover_every_sequence_once_in_order() {
        for (lengths, threads) in [
            (vec![10; 7], 2),
            (vec![256, 3, 3, 3, 200, 9], 2),
            (vec![0, 0, 0], 2),
            (vec![5], 4),
            ((1..300).collect::<Vec<_>>(), 2),
        ] {
            covers(&groups(&lengths, threads), lengths.len());
        }
        assert!(groups(&[], 2).is_empty());
    }

    #[test]
    fn small_calls_split_across_threads_and_large_ones_by_the_token_cap() {
        let g = groups(&[60; 64], 2);
        assert_eq!(g.len(), 4, "3840 tokens → 4 groups of ~960: {g:?}");
        assert!(g.iter().all(|r| r.len() == 16));
        assert_eq!(groups(&[60; 8], 2).len(), 2);
        assert_eq!(groups(&[60; 8], 1).len(), 1);
        let big = groups(&[65; 2000], 2);
        assert!(big.len() >= 2000 * 65 / MAX_GROUP_TOKENS && big.len().is_multiple_of(2));
    }
}
