//! Stripe's search query language parsed into clauses: `field:value`, `~`, comparisons, negation, `AND` or `OR`.
//!
//! The grammar (docs.stripe.com/search): clauses joined by whitespace or `AND` (conjunction) or
//! by `OR`, never both in one query and without parentheses; a clause is an optional `-`, a
//! field (`amount`, `payment_method_details.card.last4`, `metadata["key"]` or `metadata['key']`),
//! an operator (`:`, `~`, `>`, `>=`, `<`, `<=`) and a value (quoted with `"` or `'`, `\` escaping
//! the quote; unquoted only for numbers and the keyword `null`). Which fields exist and what
//! their types allow is `fields`' business; this module only reads the text.

use std::fmt;

/// Stripe's cap on the `query` parameter.
pub const QUERY_MAX_CHARS: usize = 5000;
/// The most clauses one query may hold. Stripe publishes no such limit; this one bounds the
/// index lookups one request makes.
pub const QUERY_MAX_CLAUSES: usize = 50;

/// How the clauses of a query combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joiner {
    And,
    Or,
}

/// The comparison a clause makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `:`: exact match (case-insensitive), or presence with `null`.
    Equals,
    /// `~`: substring match, string fields only.
    Contains,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl fmt::Display for Operator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Operator::Equals => ":",
            Operator::Contains => "~",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
        })
    }
}

/// A clause's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// The keyword `null` (any case, unquoted): the field is empty.
    Null,
    /// A quoted string, unescaped.
    Quoted(String),
    /// An unquoted number, as written (checked to be an integer).
    Number(String),
}

/// A field as written: a dotted path, or a metadata key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldName {
    Path(String),
    Metadata(String),
}

impl fmt::Display for FieldName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldName::Path(path) => formatter.write_str(path),
            FieldName::Metadata(key) => write!(formatter, "metadata[\"{key}\"]"),
        }
    }
}

/// One clause, before its field is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedClause {
    pub negated: bool,
    pub field: FieldName,
    pub operator: Operator,
    pub operand: Operand,
}

/// A query's clauses and how they combine (`And` for a single clause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    pub joiner: Joiner,
    pub clauses: Vec<ParsedClause>,
}

/// Why a query is not one: the sentence Stripe's error message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl QueryError {
    fn at(position: usize, what: impl fmt::Display) -> QueryError {
        QueryError(format!("{what} at character {}", position + 1))
    }
}

/// Read a query. Refuses an empty query, a query over `QUERY_MAX_CHARS`, text that is not a
/// clause, and a query that mixes `AND` and `OR`.
pub fn parse(text: &str) -> Result<ParsedQuery, QueryError> {
    if text.chars().count() > QUERY_MAX_CHARS {
        return Err(QueryError(format!(
            "the query is longer than {QUERY_MAX_CHARS} characters"
        )));
    }
    let mut reader = Reader {
        chars: text.chars().collect(),
        position: 0,
    };
    let mut clauses = Vec::new();
    let mut joiner: Option<Joiner> = None;
    reader.skip_spaces();
    if reader.at_end() {
        return Err(QueryError("the query is empty".to_string()));
    }
    loop {
        if clauses.len() == QUERY_MAX_CLAUSES {
            return Err(QueryError::at(
                reader.position,
                format!("a query may hold at most {QUERY_MAX_CLAUSES} clauses"),
            ));
        }
        clauses.push(reader.clause()?);
        let had_space = reader.skip_spaces();
        if reader.at_end() {
            break;
        }
        let keyword_at = reader.position;
        let this_joiner = match reader.keyword() {
            Some(found) => {
                reader.skip_spaces();
                found
            }
            None if had_space => Joiner::And,
            None => {
                return Err(QueryError::at(
                    reader.position,
                    "expected a space, AND or OR between clauses",
                ));
            }
        };
        match joiner {
            Some(previous) if previous != this_joiner => {
                return Err(QueryError::at(
                    keyword_at,
                    "AND and OR can't be combined in the same query",
                ));
            }
            _ => joiner = Some(this_joiner),
        }
        if reader.at_end() {
            return Err(QueryError::at(
                reader.position,
                "expected a clause after AND or OR",
            ));
        }
    }
    Ok(ParsedQuery {
        joiner: joiner.unwrap_or(Joiner::And),
        clauses,
    })
}

struct Reader {
    chars: Vec<char>,
    position: usize,
}

impl Reader {
    fn at_end(&self) -> bool {
        self.position >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    /// Skip whitespace; whether there was any.
    fn skip_spaces(&mut self) -> bool {
        let start = self.position;
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
        self.position > start
    }

    /// `AND` or `OR` (any case) followed by whitespace or the end, consumed; otherwise nothing is consumed.
    fn keyword(&mut self) -> Option<Joiner> {
        for (word, joiner) in [("and", Joiner::And), ("or", Joiner::Or)] {
            let end = self.position + word.len();
            let matches = end <= self.chars.len()
                && self.chars[self.position..end]
                    .iter()
                    .zip(word.chars())
                    .all(|(found, expected)| found.to_ascii_lowercase() == expected)
                && self.chars.get(end).is_none_or(|next| next.is_whitespace());
            if matches {
                self.position = end;
                return Some(joiner);
            }
        }
        None
    }

    fn clause(&mut self) -> Result<ParsedClause, QueryError> {
        let negated = self.peek() == Some('-');
        if negated {
            self.position += 1;
        }
        let field = self.field()?;
        let operator = self.operator()?;
        let operand = self.operand()?;
        Ok(ParsedClause {
            negated,
            field,
            operator,
            operand,
        })
    }

    fn field(&mut self) -> Result<FieldName, QueryError> {
        let start = self.position;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.position += 1;
        }
        let path: String = self.chars[start..self.position].iter().collect();
        if path.is_empty() {
            return Err(QueryError::at(start, "expected a field name"));
        }
        if path == "metadata" && self.peek() == Some('[') {
            self.position += 1;
            let key_at = self.position;
            let key = match self.peek() {
                Some(quote @ ('"' | '\'')) => self.quoted(quote)?,
                _ => {
                    return Err(QueryError::at(
                        key_at,
                        "expected a quoted metadata key after `metadata[`",
                    ));
                }
            };
            if self.peek() != Some(']') {
                return Err(QueryError::at(
                    self.position,
                    "expected `]` after the metadata key",
                ));
            }
            self.position += 1;
            return Ok(FieldName::Metadata(key));
        }
        Ok(FieldName::Path(path))
    }

    fn operator(&mut self) -> Result<Operator, QueryError> {
        let operator = match (self.peek(), self.chars.get(self.position + 1)) {
            (Some(':'), _) => Operator::Equals,
            (Some('~'), _) => Operator::Contains,
            (Some('>'), Some('=')) => Operator::GreaterOrEqual,
            (Some('<'), Some('=')) => Operator::LessOrEqual,
            (Some('>'), _) => Operator::Greater,
            (Some('<'), _) => Operator::Less,
            _ => {
                return Err(QueryError::at(
                    self.position,
                    "expected an operator (`:`, `~`, `>`, `>=`, `<` or `<=`)",
                ));
            }
        };
        self.position += match operator {
            Operator::GreaterOrEqual | Operator::LessOrEqual => 2,
            _ => 1,
        };
        Ok(operator)
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        let start = self.position;
        if let Some(quote @ ('"' | '\'')) = self.peek() {
            return self.quoted(quote).map(Operand::Quoted);
        }
        while self.peek().is_some_and(|c| !c.is_whitespace()) {
            self.position += 1;
        }
        let bare: String = self.chars[start..self.position].iter().collect();
        if bare.is_empty() {
            return Err(QueryError::at(start, "expected a value"));
        }
        if bare.eq_ignore_ascii_case("null") {
            return Ok(Operand::Null);
        }
        if bare.parse::<i64>().is_ok() {
            return Ok(Operand::Number(bare));
        }
        let digits = bare.strip_prefix('-').unwrap_or(&bare);
        if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(QueryError::at(
                start,
                format!("the number `{bare}` is out of range (at most 19 digits)"),
            ));
        }
        Err(QueryError::at(
            start,
            format!("the value `{bare}` must be quoted (only numbers and null may be unquoted)"),
        ))
    }

    /// A string between `quote`s, `\` escaping the next character.
    fn quoted(&mut self, quote: char) -> Result<String, QueryError> {
        let start = self.position;
        self.position += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(QueryError::at(start, "unterminated quoted string")),
                Some('\\') => {
                    self.position += 1;
                    match self.peek() {
                        Some(escaped) => text.push(escaped),
                        None => return Err(QueryError::at(start, "unterminated quoted string")),
                    }
                }
                Some(c) if c == quote => {
                    self.position += 1;
                    return Ok(text);
                }
                Some(c) => text.push(c),
            }
            self.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(
        negated: bool,
        field: FieldName,
        operator: Operator,
        operand: Operand,
    ) -> ParsedClause {
        ParsedClause {
            negated,
            field,
            operator,
            operand,
        }
    }

    #[test]
    fn reads_the_documented_examples() {
        let query = parse(r#"metadata['order_id']:'6735' AND amount>=10 -currency:"jpy""#)
            .expect("a query");
        assert_eq!(query.joiner, Joiner::And);
        assert_eq!(
            query.clauses,
            vec![
                clause(
                    false,
                    FieldName::Metadata("order_id".into()),
                    Operator::Equals,
                    Operand::Quoted("6735".into())
                ),
                clause(
                    false,
                    FieldName::Path("amount".into()),
                    Operator::GreaterOrEqual,
                    Operand::Number("10".into())
                ),
                clause(
                    true,
                    FieldName::Path("currency".into()),
                    Operator::Equals,
                    Operand::Quoted("jpy".into())
                ),
            ]
        );
        let escaped = parse(r#"description:"the story called \"The Sky\"""#).expect("a query");
        assert_eq!(
            escaped.clauses[0].operand,
            Operand::Quoted("the story called \"The Sky\"".into())
        );
        let or = parse("status:'failed' or customer:NULL").expect("a query");
        assert_eq!(or.joiner, Joiner::Or);
        assert_eq!(or.clauses[1].operand, Operand::Null);
    }

    #[test]
    fn refuses_what_is_not_a_query() {
        for (text, expected) in [
            ("", "the query is empty"),
            (
                "status:'a' AND amount>1 OR amount<5",
                "AND and OR can't be combined",
            ),
            ("status:succeeded", "must be quoted"),
            ("status", "expected an operator"),
            ("status:'open", "unterminated quoted string"),
            ("metadata[key]:'x'", "expected a quoted metadata key"),
            ("amount>1 AND", "expected a clause after AND or OR"),
            ("amount>1\"x\"", "must be quoted"),
            ("amount>99999999999999999999", "out of range"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.0.contains(expected), "{text}: {}", error.0);
        }
        assert!(parse(&"a".repeat(QUERY_MAX_CHARS + 1)).is_err());
        let many = vec!["amount:1"; QUERY_MAX_CLAUSES].join(" OR ");
        assert!(parse(&many).is_ok());
        let too_many = format!("{many} OR amount:2");
        assert!(
            parse(&too_many)
                .expect_err("51 clauses")
                .0
                .contains("at most 50 clauses")
        );
    }
}
