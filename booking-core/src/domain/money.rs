use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An ISO 4217 currency code in lower case, e.g. `usd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a three-letter code; upper case is accepted and folded to lower case.
    ///
    /// ```
    /// use booking_core::Currency;
    /// assert_eq!(Currency::parse("EUR").unwrap().as_str(), "eur");
    /// assert!(Currency::parse("euro").is_err());
    /// ```
    pub fn parse(code: &str) -> Result<Self> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(Error::invalid(
                "currency",
                "must be a three-letter ISO 4217 code such as \"usd\"",
            ));
        }
        let mut out = [0u8; 3];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b.to_ascii_lowercase();
        }
        Ok(Self(out))
    }

    /// The code as a lower-case string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("xxx")
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (cents) of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units; never negative for prices and rates.
    pub amount_cents: i64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// A non-negative amount.
    pub fn new(amount_cents: i64, currency: Currency) -> Result<Self> {
        if amount_cents < 0 {
            return Err(Error::invalid("amount_cents", "must not be negative"));
        }
        Ok(Self {
            amount_cents,
            currency,
        })
    }
}

/// The price of `minutes` at an hourly rate: `rate * minutes / 60`, rounded half up.
///
/// ```
/// use booking_core::{Currency, Money, price_for};
/// let rate = Money::new(5_000, Currency::parse("usd").unwrap()).unwrap();
/// assert_eq!(price_for(rate, 90).unwrap().amount_cents, 7_500);
/// // 1 cent an hour for 30 minutes is half a cent: rounded up.
/// let cent = Money::new(1, Currency::parse("usd").unwrap()).unwrap();
/// assert_eq!(price_for(cent, 30).unwrap().amount_cents, 1);
/// ```
pub fn price_for(hourly_rate: Money, minutes: i64) -> Result<Money> {
    if minutes < 0 || hourly_rate.amount_cents < 0 {
        return Err(Error::invalid("price", "negative duration or rate"));
    }
    let product = i128::from(hourly_rate.amount_cents) * i128::from(minutes);
    let rounded = (product + 30) / 60;
    let amount = i64::try_from(rounded).map_err(|_| Error::invalid("price", "price overflows"))?;
    Ok(Money {
        amount_cents: amount,
        currency: hourly_rate.currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(c: i64) -> Money {
        Money::new(c, Currency::parse("usd").unwrap()).unwrap()
    }

    #[test]
    fn rounds_half_up() {
        assert_eq!(price_for(usd(1), 29).unwrap().amount_cents, 0);
        assert_eq!(price_for(usd(1), 30).unwrap().amount_cents, 1);
        assert_eq!(price_for(usd(3), 50).unwrap().amount_cents, 3); // 2.5 -> 3
        assert_eq!(price_for(usd(6000), 45).unwrap().amount_cents, 4500);
        assert_eq!(price_for(usd(i64::MAX), 60).unwrap().amount_cents, i64::MAX);
        assert!(price_for(usd(i64::MAX), 61).is_err());
    }

    #[test]
    fn currency_serde_roundtrip_and_rejects_bad_codes() {
        let c: Currency = serde_json::from_str("\"USD\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"usd\"");
        assert!(serde_json::from_str::<Currency>("\"us\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"u$d\"").is_err());
        assert!(Money::new(-1, c).is_err());
    }

    #[test]
    fn zero_is_a_price_and_negatives_are_refused() {
        assert_eq!(price_for(usd(1000), 0).unwrap().amount_cents, 0);
        assert_eq!(price_for(usd(0), 60).unwrap().amount_cents, 0);
        assert!(price_for(usd(1000), -1).is_err());
        let negative_rate = Money {
            amount_cents: -1,
            currency: Currency::parse("usd").unwrap(),
        };
        assert!(price_for(negative_rate, 60).is_err());
    }

    #[test]
    fn currency_prints_and_converts_as_its_lower_case_code() {
        let c = Currency::try_from("EUR".to_owned()).unwrap();
        assert_eq!(c.to_string(), "eur");
        assert_eq!(String::from(c), "eur");
        assert!(Currency::try_from("EURO".to_owned()).is_err());
        assert!(Currency::parse("e1r").is_err());
    }
}
