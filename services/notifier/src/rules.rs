//! Which notifications an outcome calls for (pure).
//!
//! - An e-mail when the request asked for e-mail (`notify.email`) and gave an address.
//! - An SMS when it asked for SMS (`notify.sms`) and gave a phone number.
//! - For `QuoteIssued`, only when the request set no ceiling (`notify.max_premium`) or the
//!   premium is at most the ceiling. A declined or referred quote is always notified on the
//!   channels chosen: the ceiling is about prices, and there is none.
//! - Any other event calls for nothing.
//!
//! Addresses and phone numbers are personal data: [`Recipient`]'s `Debug` and
//! [`Recipient::redacted`] hide them, so a [`Notification`] can be logged.

use std::fmt;

use quote_domain::quote::{Quote, QuoteEvent};
use quote_domain::types::{Email, PhoneE164};

use crate::templates::{self, QuoteOutcome};

/// A way of reaching the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// E-mail, through SES v2.
    Email,
    /// SMS, through SNS.
    Sms,
}

impl Channel {
    /// `email` or `sms`: the key of the notification id and of the ledger's records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The channel named by [`Channel::as_str`].
    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a notification goes. `Debug` shows only the redacted form.
#[derive(Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An e-mail address.
    Email(Email),
    /// A phone number.
    Phone(PhoneE164),
}

impl Recipient {
    /// The channel that reaches this recipient.
    pub fn channel(&self) -> Channel {
        match self {
            Recipient::Email(_) => Channel::Email,
            Recipient::Phone(_) => Channel::Sms,
        }
    }

    /// A form safe to log and store: `a***@example.com`, `+*******0142`.
    pub fn redacted(&self) -> String {
        match self {
            Recipient::Email(email) => redact_email(email),
            Recipient::Phone(phone) => redact_phone(phone),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.redacted())
    }
}

/// `a***@example.com`: the first character of the local part and the domain.
pub fn redact_email(email: &Email) -> String {
    let first: String = email.local_part().chars().take(1).collect();
    format!("{first}***@{}", email.domain())
}

/// `+*******0142`: the last four digits.
pub fn redact_phone(phone: &PhoneE164) -> String {
    let digits = phone.digits();
    let keep = digits.len().min(4);
    let (hidden, shown) = digits.split_at(digits.len() - keep);
    format!("+{}{shown}", "*".repeat(hidden.len()))
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `email` or `sms`: with the outcome event's id, names the notification
    /// ([`crate::ledger::notification_id`]).
    pub id_key: &'static str,
    /// The channel.
    pub channel: Channel,
    /// Where it goes (its channel is [`Notification::channel`]).
    pub to: Recipient,
    /// The e-mail's subject (`None` for an SMS).
    pub subject: Option<String>,
    /// The e-mail's body or the SMS text.
    pub body: String,
}

/// The template view of an outcome event, `None` for any other event.
pub fn outcome_of(event: &QuoteEvent) -> Option<QuoteOutcome<'_>> {
    match event {
        QuoteEvent::QuoteIssued(issued) => Some(QuoteOutcome::Issued {
            annual_premium: issued.annual_premium,
            valid_until: issued.valid_until,
        }),
        QuoteEvent::QuoteDeclined(declined) => Some(QuoteOutcome::Declined {
            reasons: &declined.reasons,
        }),
        QuoteEvent::QuoteReferred(referred) => Some(QuoteOutcome::Referred {
            reasons: &referred.reasons,
        }),
        QuoteEvent::QuoteRequested(_)
        | QuoteEvent::VehicleDecoded(_)
        | QuoteEvent::VehicleDecodeFailed(_)
        | QuoteEvent::DriverHistoryRetrieved(_)
        | QuoteEvent::DriverHistoryUnavailable(_) => None,
    }
}

/// The notifications `outcome_event` calls for, given the quote as of that event (e-mail
/// first, then SMS).
pub fn notifications(quote: &Quote, outcome_event: &QuoteEvent) -> Vec<Notification> {
    let Some(outcome) = outcome_of(outcome_event) else {
        return Vec::new();
    };
    let notify = &quote.request.notify;
    if let QuoteOutcome::Issued { annual_premium, .. } = outcome {
        if notify
            .max_premium
            .is_some_and(|ceiling| annual_premium > ceiling)
        {
            return Vec::new();
        }
    }
    let contact = &quote.request.contact;
    let mut out = Vec::with_capacity(2);
    if let (true, Some(email)) = (notify.email, &contact.email) {
        let content = templates::email(quote.quote_id, &outcome);
        out.push(Notification {
            id_key: Channel::Email.as_str(),
            channel: Channel::Email,
            to: Recipient::Email(email.clone()),
            subject: Some(content.subject),
            body: content.body,
        });
    }
    if let (true, Some(phone)) = (notify.sms, &contact.phone) {
        out.push(Notification {
            id_key: Channel::Sms.as_str(),
            channel: Channel::Sms,
            to: Recipient::Phone(phone.clone()),
            subject: None,
            body: templates::sms(quote.quote_id, &outcome),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use quote_domain::quote::{QuoteDeclined, QuoteId, QuoteIssued, QuoteReferred, QuoteRequested};
    use quote_domain::request::{NotifyPreferences, QuoteRequest, QuoteRequestInput};
    use quote_domain::types::Money;
    use time::macros::{date, datetime};

    /// A pending quote whose request has these preferences and contact points
    /// (`contact`: whether the e-mail address and the phone number are known).
    fn quote(email: bool, sms: bool, max_premium: Option<u64>, contact: (bool, bool)) -> Quote {
        let input: QuoteRequestInput = serde_json::from_value(serde_json::json!({
            "customer_id": "cust-42",
            "contact": {"email": "ana@example.com", "phone": "+18045550142"},
            "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
            "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                         "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
            "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500}
        }))
        .unwrap();
        let mut request = QuoteRequest::parse(&input, date!(2026 - 11 - 27)).unwrap();
        // Validation refuses a channel without its contact point; states may still have one.
        if !contact.0 {
            request.contact.email = None;
        }
        if !contact.1 {
            request.contact.phone = None;
        }
        request.notify = NotifyPreferences {
            email,
            sms,
            max_premium: max_premium.map(|d| Money::from_dollars(d).unwrap()),
        };
        let requested = QuoteEvent::QuoteRequested(QuoteRequested {
            quote_id: "0190f5a2-7b1c-7d3e-8f00-123456789abc"
                .parse::<QuoteId>()
                .unwrap(),
            request,
            requested_at: datetime!(2026-11-27 10:00 UTC),
        });
        Quote::fold([(1, &requested)]).unwrap().unwrap()
    }

    /// `QuoteIssued` for a premium in cents (through serde, so optional fields default).
    fn issued_cents(cents: u64) -> QuoteEvent {
        QuoteEvent::QuoteIssued(
            serde_json::from_value::<QuoteIssued>(serde_json::json!({
                "annual_premium": cents,
                "valid_until": "2026-12-27T10:00:00Z",
                "rating_table_version": "2026-11",
            }))
            .unwrap(),
        )
    }

    fn issued(dollars: u64) -> QuoteEvent {
        issued_cents(dollars * 100)
    }

    fn declined() -> QuoteEvent {
        QuoteEvent::QuoteDeclined(QuoteDeclined {
            reasons: vec!["licence suspended".into()],
        })
    }

    fn referred() -> QuoteEvent {
        QuoteEvent::QuoteReferred(QuoteReferred {
            reasons: vec!["driving history unavailable".into()],
        })
    }

    fn channels(list: &[Notification]) -> Vec<Channel> {
        list.iter().map(|n| n.channel).collect()
    }

    #[test]
    fn email_when_chosen_and_an_address_is_known() {
        let list = notifications(&quote(true, false, None, (true, true)), &issued(1200));
        assert_eq!(channels(&list), [Channel::Email]);
        let mail = &list[0];
        assert_eq!(mail.id_key, "email");
        assert_eq!(
            mail.to,
            Recipient::Email(Email::parse("ana@example.com").unwrap())
        );
        assert!(mail.subject.as_deref().unwrap().contains("$1,200.00"));
        assert!(mail.body.contains("0190f5a2-7b1c-7d3e-8f00-123456789abc"));
    }

    #[test]
    fn sms_when_chosen_and_a_phone_is_known() {
        let list = notifications(&quote(false, true, None, (true, true)), &issued(1200));
        assert_eq!(channels(&list), [Channel::Sms]);
        assert_eq!(list[0].id_key, "sms");
        assert_eq!(list[0].subject, None);
        assert_eq!(
            list[0].to,
            Recipient::Phone(PhoneE164::parse("+18045550142").unwrap())
        );
        assert!(list[0].body.contains("$1,200.00/year"));
    }

    #[test]
    fn both_channels_email_first() {
        let list = notifications(&quote(true, true, None, (true, true)), &issued(1200));
        assert_eq!(channels(&list), [Channel::Email, Channel::Sms]);
    }

    #[test]
    fn nothing_when_no_channel_is_chosen() {
        for event in [issued(1200), declined(), referred()] {
            assert!(notifications(&quote(false, false, None, (true, true)), &event).is_empty());
        }
    }

    #[test]
    fn a_chosen_channel_without_its_contact_point_is_skipped() {
        let q = quote(true, true, None, (false, true));
        assert_eq!(channels(&notifications(&q, &issued(1200))), [Channel::Sms]);
        let q = quote(true, true, None, (true, false));
        assert_eq!(channels(&notifications(&q, &declined())), [Channel::Email]);
        let q = quote(true, true, None, (false, false));
        assert!(notifications(&q, &referred()).is_empty());
    }

    #[test]
    fn issued_is_notified_only_up_to_the_ceiling() {
        let q = quote(true, true, Some(1800), (true, true));
        assert_eq!(notifications(&q, &issued(1799)).len(), 2);
        assert_eq!(
            notifications(&q, &issued(1800)).len(),
            2,
            "at most, inclusive"
        );
        assert!(notifications(&q, &issued(1801)).is_empty());
        assert!(notifications(&q, &issued_cents(180_001)).is_empty());
        let no_ceiling = quote(true, true, None, (true, true));
        assert_eq!(notifications(&no_ceiling, &issued(1_000_000)).len(), 2);
    }

    #[test]
    fn declined_and_referred_are_notified_whatever_the_ceiling() {
        let q = quote(true, true, Some(1), (true, true));
        let list = notifications(&q, &declined());
        assert_eq!(channels(&list), [Channel::Email, Channel::Sms]);
        assert!(list[0]
            .subject
            .as_deref()
            .unwrap()
            .ends_with("was declined"));
        assert!(list[0].body.contains("licence suspended"));
        let list = notifications(&q, &referred());
        assert_eq!(channels(&list), [Channel::Email, Channel::Sms]);
        assert!(list[1].body.contains("driving history unavailable"));
    }

    #[test]
    fn other_events_call_for_nothing() {
        let q = quote(true, true, None, (true, true));
        let requested = QuoteEvent::QuoteRequested(QuoteRequested {
            quote_id: q.quote_id,
            request: q.request.clone(),
            requested_at: q.requested_at,
        });
        assert!(notifications(&q, &requested).is_empty());
    }

    #[test]
    fn recipients_are_redacted_in_debug_output() {
        let email = Recipient::Email(Email::parse("ana.diaz@Example.com").unwrap());
        let phone = Recipient::Phone(PhoneE164::parse("+18045550142").unwrap());
        assert_eq!(email.redacted(), "a***@example.com");
        assert_eq!(phone.redacted(), "+*******0142");
        assert_eq!(format!("{phone:?}"), "Recipient(+*******0142)");
        let list = notifications(&quote(true, true, None, (true, true)), &declined());
        let debug = format!("{list:?}");
        assert!(!debug.contains("ana@example.com") && !debug.contains("8045550142"));
        assert_eq!(email.channel(), Channel::Email);
        assert_eq!(phone.channel(), Channel::Sms);
        assert_eq!(Channel::parse("sms"), Some(Channel::Sms));
        assert_eq!(Channel::parse("fax"), None);
    }
}
