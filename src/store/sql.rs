//! A tiny builder for statements assembled at run time (filters, sorting): text plus
//! arguments, always bound as `$n` parameters, never spliced into the SQL.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::Any;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
    /// NULL of each type: PostgreSQL checks a parameter's declared type against its column.
    NullText,
    NullInt,
    NullReal,
}

impl Arg {
    pub fn text(s: impl Into<String>) -> Arg {
        Arg::Text(s.into())
    }

    pub fn opt_text(s: Option<&str>) -> Arg {
        s.map_or(Arg::NullText, |s| Arg::Text(s.to_string()))
    }

    pub fn opt_int(i: Option<i64>) -> Arg {
        i.map_or(Arg::NullInt, Arg::Int)
    }

    pub fn opt_real(f: Option<f64>) -> Arg {
        f.map_or(Arg::NullReal, Arg::Real)
    }
}

/// SQL text with its ordered arguments.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Append another fragment, renumbering its placeholders.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        let offset = self.args.len();
        let mut rest = other.text.as_str();
        while let Some(pos) = rest.find('$') {
            self.text.push_str(&rest[..pos]);
            let digits: String = rest[pos + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if digits.is_empty() {
                self.text.push('$');
                rest = &rest[pos + 1..];
                continue;
            }
            let n: usize = digits.parse().unwrap_or(0);
            self.text.push('$');
            self.text.push_str(&(n + offset).to_string());
            rest = &rest[pos + 1 + digits.len()..];
        }
        self.text.push_str(rest);
        self.args.extend(other.args);
        self
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.args
            .iter()
            .fold(sqlx::query(&self.text), |q, a| match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Real(f) => q.bind(*f),
                Arg::NullText => q.bind(None::<String>),
                Arg::NullInt => q.bind(None::<i64>),
                Arg::NullReal => q.bind(None::<f64>),
            })
    }

    pub fn query_as<T>(&self) -> QueryAs<'_, Any, T, AnyArguments<'_>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        self.args
            .iter()
            .fold(sqlx::query_as(&self.text), |q, a| match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Real(f) => q.bind(*f),
                Arg::NullText => q.bind(None::<String>),
                Arg::NullInt => q.bind(None::<i64>),
                Arg::NullReal => q.bind(None::<f64>),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_renumbers_placeholders() {
        let mut a = Sql::new("x = ");
        a.bind(Arg::Int(1));
        let mut b = Sql::new("y = ");
        b.bind(Arg::Text("a".into()))
            .push(" AND z = ")
            .bind(Arg::Int(2));
        a.push(" AND ").append(b);
        assert_eq!(a.text, "x = $1 AND y = $2 AND z = $3");
        assert_eq!(a.args.len(), 3);
    }
}
