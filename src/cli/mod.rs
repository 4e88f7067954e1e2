//! One module per subcommand, and how their errors are told.

pub mod describe;
pub mod hash;
pub mod matching;
pub mod run;

/// The error and its causes on one line, each cause said once: library errors often
/// print their source inside their own message already (`…: No such file or directory
/// (os error 2)`), and repeating it would double every line.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(io)
            .context(format!(
                "reading lists/known.csv: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            ))
            .context("hash list \"known\"");
        assert_eq!(
            describe(&error),
            "hash list \"known\": reading lists/known.csv: entity not found"
        );
    }
}
