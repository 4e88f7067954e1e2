//! One module per subcommand.

pub mod describe;
pub mod hash;
pub mod matching;
pub mod run;
