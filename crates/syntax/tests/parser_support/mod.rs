//! What the parser's tests share: the oracle (GitHub's renderer) and the proptest strategies.

pub mod oracle;
pub mod strategies;
