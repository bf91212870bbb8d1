//! A submitted form (`application/x-www-form-urlencoded`), with its repeated fields: a Push
//! Config's statuses and a dead-letter selection are one field given many times.

/// The fields of a form, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of a field, if it was sent.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's value, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.one(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of a field, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox was ticked (a ticked box is sent, an unticked one is not).
    pub fn ticked(&self, name: &str) -> bool {
        self.one(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_all_kept_in_order() {
        let form =
            Form::parse(b"statuses=DELIVERED&url=https%3A%2F%2Fx&statuses=RTO_DELIVERED&key=+");
        assert_eq!(form.all("statuses"), ["DELIVERED", "RTO_DELIVERED"]);
        assert_eq!(form.one("url"), Some("https://x"));
        assert_eq!(form.text("key"), None, "blank is absent");
        assert!(!form.ticked("enabled"));
    }
}
