# The API's front door: an Application Load Balancer terminating TLS with an ACM certificate,
# behind AWS WAF. event-source verifies every token itself (see docs/adr/0007).
#
# Trial mode (no `certificate_arn`, `trial_http_cidrs` set): a plain-HTTP listener on port 80
# instead, reachable only from those CIDR blocks, for trying the platform without a domain or
# a certificate. Tokens then cross the network in clear text: never for production.

locals {
  trial_mode = var.certificate_arn == null

  # The one listener's port and the clients allowed to reach it.
  listener_port  = local.trial_mode ? 80 : 443
  listener_cidrs = local.trial_mode ? var.trial_http_cidrs : var.alb_ingress_cidrs
}

resource "aws_security_group" "alb" {
  name_prefix = "${local.names.api}-alb-"
  description = local.trial_mode ? "${local.names.api} load balancer (trial): HTTP in from trial CIDRs, HTTP to the API tasks." : "${local.names.api} load balancer: HTTPS in, HTTP to the API tasks."
  vpc_id      = module.network.vpc_id

  ingress {
    description = local.trial_mode ? "HTTP from the trial CIDR blocks only" : "HTTPS from the allowed clients"
    from_port   = local.listener_port
    to_port     = local.listener_port
    protocol    = "tcp"
    cidr_blocks = local.listener_cidrs
  }

  egress {
    description = "HTTP to the API tasks in the VPC"
    from_port   = local.container_port
    to_port     = local.container_port
    protocol    = "tcp"
    cidr_blocks = [module.network.vpc_cidr_block]
  }

  tags = { Name = "${local.names.api}-alb" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb" "api" {
  #checkov:skip=CKV2_AWS_20:No HTTP-to-HTTPS redirect on purpose: production has no port 80 listener at all (a redirect would come after a token had crossed the network); only trial mode, without a certificate, listens on plain HTTP, restricted to trial_http_cidrs.
  #checkov:skip=CKV2_AWS_76:The Log4j protection this check is named for is there (AWSManagedRulesKnownBadInputsRuleSet, Log4JRCE rules); the check also demands AWSManagedRulesAnonymousIpList, which would block customers behind VPNs and privacy relays from requesting quotes.
  name                       = local.names.api
  internal                   = var.alb_internal
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.alb_internal ? module.network.private_subnet_ids : module.network.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = aws_s3_bucket.logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_lb_target_group" "api" {
  #checkov:skip=CKV_AWS_378:The load balancer terminates TLS and forwards to the tasks over HTTP inside the VPC (private subnets, reachable from the load balancer's security group only); the check fails because trial mode's listener is plain HTTP.
  name                 = local.names.api
  port                 = local.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = module.network.vpc_id
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

# HTTPS only: no port 80 listener, so a bearer token is never sent in clear text (an HTTP to
# HTTPS redirect would come after the token had already crossed the network).
resource "aws_lb_listener" "https" {
  count = local.trial_mode ? 0 : 1

  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.alb_ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

# Trial mode only: plain HTTP, reachable from `trial_http_cidrs` alone (the security group above).
resource "aws_lb_listener" "http_trial" {
  #checkov:skip=CKV_AWS_2:Trial mode only (no certificate_arn): plain HTTP restricted by the security group to trial_http_cidrs, which refuses 0.0.0.0/0; production mode has the HTTPS listener and no port 80 at all.
  #checkov:skip=CKV_AWS_103:Trial mode only: a plain-HTTP listener has no TLS policy; production mode's HTTPS listener uses TLS 1.2+ (alb_ssl_policy).
  count = local.trial_mode ? 1 : 0

  load_balancer_arn = aws_lb.api.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

# ---------------------------------------------------------------------------------------------
# WAF
# ---------------------------------------------------------------------------------------------

resource "aws_wafv2_web_acl" "api" {
  name        = local.names.api
  description = "Managed protections and a per-IP rate limit in front of the quote API."
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "aws-common"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesCommonRuleSet"
        vendor_name = "AWS"

        # The API accepts bodies up to 64 KiB and answers 413 itself; the rule set's 8 KiB
        # limit would block valid multi-vehicle quotes.
        rule_action_override {
          name = "SizeRestrictions_BODY"
          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.names.api}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 20

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.names.api}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 30

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAmazonIpReputationList"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.names.api}-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 40

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.names.api}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = local.names.api
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  resource_arn = aws_lb.api.arn
  web_acl_arn  = aws_wafv2_web_acl.api.arn
}

resource "aws_cloudwatch_log_group" "waf" {
  name              = local.names.waf_logs
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.platform.arn
}

resource "aws_wafv2_web_acl_logging_configuration" "api" {
  resource_arn            = aws_wafv2_web_acl.api.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  # Bearer tokens never reach the logs.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}
