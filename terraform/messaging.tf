# The notifier's channels. E-mail: an SES identity for the sender (an address is verified by
# the mail AWS sends to it; a domain by the DKIM records in the outputs). New SES accounts are
# in the sandbox and may only send to verified addresses until production access is granted.
resource "aws_sesv2_email_identity" "notifier" {
  email_identity = coalesce(var.ses_identity, var.notify_from_email)
}

# SMS: transactional messages through SNS (account-wide settings, optional).
resource "aws_sns_sms_preferences" "this" {
  count = var.manage_sms_preferences ? 1 : 0

  default_sms_type    = "Transactional"
  monthly_spend_limit = var.sms_monthly_spend_limit
}
