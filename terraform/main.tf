data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

# Settings that depend on each other, checked at plan time.
resource "terraform_data" "configuration_checks" {
  lifecycle {
    precondition {
      condition     = (var.auth_hs256_secret_arn == null) != (var.auth_jwks_url == null)
      error_message = "Set exactly one of auth_hs256_secret_arn and auth_jwks_url: event-source refuses to start on AWS without one, and with both."
    }
    precondition {
      condition     = var.auth_jwks_url == null || (var.auth_issuer != null && var.auth_audience != null)
      error_message = "auth_jwks_url needs auth_issuer and auth_audience: without them a token minted by the same identity provider for any other client would be accepted (event-source refuses to start)."
    }
    precondition {
      condition     = var.driver_history_provider != "http" || var.driver_history_url != null
      error_message = "driver_history_provider = \"http\" needs driver_history_url."
    }
    precondition {
      condition     = alltrue([for scaling in values(var.consumer_scaling) : scaling.max_tasks <= var.stream_shard_count])
      error_message = "consumer_scaling: max_tasks must not exceed stream_shard_count (a consumer task without a shard lease idles)."
    }
    precondition {
      condition     = var.create_vpc || (var.vpc_id != null && length(var.private_subnet_ids) >= 2)
      error_message = "With create_vpc = false, set vpc_id and at least two private_subnet_ids."
    }
    precondition {
      condition     = (var.certificate_arn == null) == (length(var.trial_http_cidrs) > 0)
      error_message = "Set certificate_arn (production: HTTPS) or trial_http_cidrs (trial mode: plain HTTP from those CIDR blocks only), not both and not neither."
    }
    precondition {
      condition     = var.create_vpc || var.alb_internal || length(var.public_subnet_ids) >= 2
      error_message = "An internet-facing load balancer in an existing VPC needs at least two public_subnet_ids."
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Encryption: one customer managed key for the data (tables, stream, archive), the logs and
# the alarm topic
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "platform_key" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is the key itself; the account's administrators manage it (the default key policy), as AWS requires to keep a key manageable.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself; writes are limited to the account root (IAM decides further) and to CloudWatch Logs/alarms under conditions.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only; it cannot name anything else.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions = [
      "kms:Decrypt*",
      "kms:Describe*",
      "kms:Encrypt*",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "platform" {
  description             = "${local.names.platform}: tables, stream, archive, logs and alarms"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.platform_key.json
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${local.names.platform}"
  target_key_id = aws_kms_key.platform.key_id
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

module "network" {
  source = "./modules/network"

  name                    = local.names.platform
  create_vpc              = var.create_vpc
  vpc_id                  = var.vpc_id
  vpc_cidr                = var.vpc_cidr
  az_count                = var.az_count
  availability_zones      = var.availability_zones
  private_subnet_ids      = var.private_subnet_ids
  public_subnet_ids       = var.public_subnet_ids
  private_route_table_ids = var.private_route_table_ids
  enable_nat_gateway      = var.enable_nat_gateway
  single_nat_gateway      = var.single_nat_gateway
  create_vpc_endpoints    = var.create_vpc_endpoints
  interface_endpoints     = var.interface_endpoints
  log_retention_days      = var.log_retention_days
  kms_key_arn             = aws_kms_key.platform.arn
}

# ---------------------------------------------------------------------------------------------
# Images and cluster
# ---------------------------------------------------------------------------------------------

# One repository: every service runs from the one image (`quotes run SERVICE`).
resource "aws_ecr_repository" "quotes" {
  name                 = "${local.names.ecr_namespace}/quotes"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_destroy

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.platform.arn
  }
}

resource "aws_ecr_lifecycle_policy" "quotes" {
  repository = aws_ecr_repository.quotes.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the 50 most recent images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = 50
        }
        action = { type = "expire" }
      },
    ]
  })
}

# The collector image comes from ECR Public through this cache, so tasks without NAT can pull it.
resource "aws_ecr_pull_through_cache_rule" "ecr_public" {
  count = var.adot_image == null ? 1 : 0

  ecr_repository_prefix = local.names.ecr_public_cache
  upstream_registry_url = "public.ecr.aws"
}

resource "aws_ecs_cluster" "this" {
  name = local.names.cluster

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# ---------------------------------------------------------------------------------------------
# Observability shared by the services
# ---------------------------------------------------------------------------------------------

# The collectors write the services' metrics here as EMF; CloudWatch extracts them into
# `metrics_namespace`.
resource "aws_cloudwatch_log_group" "metrics" {
  name              = local.names.metrics_logs
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.platform.arn
}

resource "aws_sns_topic" "alarms" {
  name              = local.names.alarm_topic
  kms_master_key_id = aws_kms_key.platform.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
