//! One module per subcommand.

pub mod bench;
pub mod hash;
pub mod matching;
pub mod run;
