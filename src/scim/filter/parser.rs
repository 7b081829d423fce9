//! A recursive-descent parser for the filter grammar of RFC 7644 §3.4.2.2
//! and the PATCH path grammar of §3.5.2, with the RFC's precedence
//! (`not` binds tighter than `and`, `and` tighter than `or`).
//!
//! Keywords and operators are case-insensitive; whitespace between tokens
//! may be any run of spaces or tabs. Inputs are bounded in length, depth and
//! number of comparisons.

use super::ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};

/// Longest filter or path accepted, in bytes.
pub const MAX_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, `not` and value paths.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons (`eq`, `co`, `pr`, …) in one filter. Every one becomes
/// a predicate the database evaluates for each candidate row (and, in a
/// value path, for each value): 450 `co` terms over two users with 50,000
/// emails each ran for seconds, and SQLite refuses 500 `or` terms outright.
pub const MAX_TERMS: usize = 100;

/// Where and why parsing failed; `Display` gives a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    /// Byte offset into the input.
    pub position: usize,
    pub message: String,
}

pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input)?;
    let f = p.or_expr(0, false)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error(format!("unexpected '{}'", p.rest_preview())));
    }
    Ok(f)
}

pub fn parse_path(input: &str) -> Result<PatchPath, ParseError> {
    let mut p = Parser::new(input)?;
    p.skip_ws();
    let attr = p.attr_path()?;
    let mut filter = None;
    let mut sub_after_filter = None;
    if p.eat(b'[') {
        if attr.sub.is_some() {
            return Err(
                p.error("a value filter must follow an attribute, not a sub-attribute".into())
            );
        }
        filter = Some(p.or_expr(1, true)?);
        p.skip_ws();
        p.expect(b']')?;
        if p.eat(b'.') {
            sub_after_filter = Some(p.attr_name()?);
        }
    }
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error(format!("unexpected '{}'", p.rest_preview())));
    }
    Ok(PatchPath {
        attr,
        filter,
        sub_after_filter,
    })
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Comparisons read so far.
    terms: usize,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$'
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, ParseError> {
        if src.len() > MAX_LEN {
            return Err(ParseError {
                position: MAX_LEN,
                message: format!("longer than {MAX_LEN} bytes"),
            });
        }
        Ok(Parser {
            src,
            pos: 0,
            terms: 0,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            position: self.pos,
            message,
        }
    }

    fn rest_preview(&self) -> String {
        self.src[self.pos..].chars().take(20).collect()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ParseError> {
        if self.eat(b) {
            Ok(())
        } else if self.at_end() {
            Err(self.error(format!("expected '{}' but the input ended", b as char)))
        } else {
            Err(self.error(format!(
                "expected '{}' but found '{}'",
                b as char,
                self.rest_preview()
            )))
        }
    }

    /// The next word (a run of name characters) without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = &self.src[self.pos..];
        let end = rest
            .bytes()
            .position(|b| !is_name_byte(b))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Consumes `keyword` (case-insensitive) if it is the next whole word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek_word().eq_ignore_ascii_case(keyword) {
            self.pos += keyword.len();
            true
        } else {
            false
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(())
        }
    }

    fn or_expr(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut left = self.and_expr(depth, in_brackets)?;
        loop {
            let save = self.pos;
            if self.skip_ws()
                && self.eat_keyword("or")
                && (self.skip_ws() || self.at_end() || self.peek() == Some(b'('))
            {
                let right = self.and_expr(depth, in_brackets)?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut left = self.unary(depth, in_brackets)?;
        loop {
            let save = self.pos;
            if self.skip_ws()
                && self.eat_keyword("and")
                && (self.skip_ws() || self.at_end() || self.peek() == Some(b'('))
            {
                let right = self.unary(depth, in_brackets)?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn unary(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        self.check_depth(depth)?;
        self.skip_ws();
        let save = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            if self.peek() == Some(b'(') {
                let inner = self.group(depth + 1, in_brackets)?;
                return Ok(Filter::Not(Box::new(inner)));
            }
            // An attribute that happens to be called "not".
            self.pos = save;
        }
        if self.peek() == Some(b'(') {
            return self.group(depth + 1, in_brackets);
        }
        self.attr_expr(depth, in_brackets)
    }

    fn group(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        self.expect(b'(')?;
        let inner = self.or_expr(depth, in_brackets)?;
        self.skip_ws();
        self.expect(b')')?;
        Ok(inner)
    }

    fn attr_expr(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error(format!("more than {MAX_TERMS} comparisons in one filter")));
        }
        if self.at_end() {
            return Err(self.error("expected an attribute but the input ended".into()));
        }
        let path = self.attr_path()?;
        if self.peek() == Some(b'[') {
            if in_brackets {
                return Err(self.error("value filters cannot be nested".into()));
            }
            if path.sub.is_some() {
                return Err(self
                    .error("a value filter must follow an attribute, not a sub-attribute".into()));
            }
            self.pos += 1;
            let inner = self.or_expr(depth + 1, true)?;
            self.skip_ws();
            self.expect(b']')?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        if !self.skip_ws() {
            return Err(self.error(format!("expected an operator after '{path}'")));
        }
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.error(format!(
                "expected an operator after '{path}' (eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
            )));
        }
        if word.eq_ignore_ascii_case("pr") {
            self.pos += 2;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            if path.uri.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("not") {
                return Err(self.error("expected '(' after 'not'".into()));
            }
            return Err(self.error(format!(
                "unknown operator '{word}' (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
            )));
        };
        self.pos += word.len();
        if !self.skip_ws() {
            return Err(self.error(format!("expected a value after '{}'", op.keyword())));
        }
        let value = self.comp_value()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn attr_name(&mut self) -> Result<String, ParseError> {
        let word = self.peek_word();
        let valid = word
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'$');
        if !valid {
            return Err(if word.is_empty() && self.at_end() {
                self.error("expected an attribute name but the input ended".into())
            } else {
                self.error(format!(
                    "expected an attribute name, found '{}'",
                    self.rest_preview()
                ))
            });
        }
        self.pos += word.len();
        Ok(word.to_owned())
    }

    /// `[URI ":"] ATTRNAME *1subAttr`. A URI is recognised by its `urn:`
    /// prefix; it ends at the last `:` of the token (attribute names never
    /// contain one).
    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let rest = &self.src[start..];
        let token_len = rest
            .bytes()
            .position(|b| !(is_name_byte(b) || b == b':' || b == b'.'))
            .unwrap_or(rest.len());
        let token = &rest[..token_len];
        let (uri, local_start) = if token.len() > 4 && token[..4].eq_ignore_ascii_case("urn:") {
            match token.rfind(':') {
                Some(i) if i > 4 => (Some(token[..i].to_owned()), start + i + 1),
                _ => return Err(self.error(format!("malformed schema URN in '{token}'"))),
            }
        } else {
            (None, start)
        };
        self.pos = local_start;
        let name = self.attr_name()?;
        let sub = if self.eat(b'.') {
            Some(self.attr_name()?)
        } else {
            None
        };
        if self.pos != start + token_len {
            return Err(self.error(format!("malformed attribute path '{token}'")));
        }
        Ok(AttrPath { uri, name, sub })
    }

    fn comp_value(&mut self) -> Result<CompValue, ParseError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => {
                let word = self.peek_word();
                let value = match word.to_ascii_lowercase().as_str() {
                    "true" => CompValue::Bool(true),
                    "false" => CompValue::Bool(false),
                    "null" => CompValue::Null,
                    _ => {
                        return Err(self.error(format!(
                            "expected a value (a quoted string, a number, true, false or null), found '{}'",
                            self.rest_preview()
                        )));
                    }
                };
                self.pos += word.len();
                Ok(value)
            }
        }
    }

    fn string(&mut self) -> Result<CompValue, ParseError> {
        let start = self.pos;
        let bytes = self.bytes();
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let literal = &self.src[start..=i];
                    let s: String = serde_json::from_str(literal)
                        .map_err(|e| self.error(format!("invalid string literal: {e}")))?;
                    self.pos = i + 1;
                    return Ok(CompValue::String(s));
                }
                _ => i += 1,
            }
        }
        Err(self.error("unterminated string".into()))
    }

    fn number(&mut self) -> Result<CompValue, ParseError> {
        let rest = &self.src[self.pos..];
        let len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
            .unwrap_or(rest.len());
        let n: serde_json::Number = serde_json::from_str(&rest[..len])
            .map_err(|_| self.error(format!("invalid number '{}'", &rest[..len])))?;
        self.pos += len;
        Ok(CompValue::Number(n))
    }
}
