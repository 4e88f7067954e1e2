//! One module per subcommand.

pub mod bench;
pub mod matching;
pub mod run;
