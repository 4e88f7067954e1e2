//! One module per subcommand.

pub mod hash;
pub mod matching;
pub mod run;
