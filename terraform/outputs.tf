output "api_url" {
  description = "Base URL of the API (point a DNS name covered by the certificate at `alb_dns_name`); in trial mode `http://<alb_dns_name>`, reachable from `trial_http_cidrs` only."
  value       = local.trial_mode ? "http://${aws_lb.api.dns_name}" : "https://${aws_lb.api.dns_name}"
}

output "trial_mode" {
  description = "True when the API is served over plain HTTP to `trial_http_cidrs` (no certificate)."
  value       = local.trial_mode
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the load balancer (for a Route 53 alias record)."
  value       = aws_lb.api.zone_id
}

output "ecr_repository_url" {
  description = "ECR repository URL of the `quotes` image every service runs (push `<url>:<image_tag>`)."
  value       = aws_ecr_repository.quotes.repository_url
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "ECS service name of each service."
  value = merge(
    { "event-source" = module.event_source.service_name },
    { for service, consumer in module.consumer : service => consumer.service_name },
  )
}

output "task_role_arns" {
  description = "Task role of each service."
  value = merge(
    { "event-source" = module.event_source.task_role_arn },
    { for service, consumer in module.consumer : service => consumer.task_role_arn },
  )
}

output "table_names" {
  description = "DynamoDB table names by the variable the services read them from."
  value = {
    EVENTS_TABLE            = module.events_table.name
    IDEMPOTENCY_TABLE       = module.idempotency_table.name
    READ_MODEL_TABLE        = module.read_model_table.name
    DEAD_LETTER_TABLE       = module.dead_letter_table.name
    RELAY_DEAD_LETTER_TABLE = module.relay_dead_letter_table.name
    NOTIFICATIONS_TABLE     = module.notifications_table.name
    ARCHIVE_MANIFEST_TABLE  = module.archive_manifest_table.name
  }
}

output "lease_table_names" {
  description = "Lease table of each consumer service (its LEASE_TABLE)."
  value       = { for service, table in module.lease_tables : service => table.name }
}

output "event_stream_name" {
  description = "Name of the Kinesis stream (EVENT_STREAM)."
  value       = aws_kinesis_stream.events.name
}

output "event_stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.events.arn
}

output "archive_bucket" {
  description = "Name of the archive bucket (the archiver's ARCHIVE_BUCKET)."
  value       = aws_s3_bucket.archive.id
}

output "archive_prefix" {
  description = "Key prefix of the archiver's segments in the archive bucket (ARCHIVE_PREFIX)."
  value       = var.archive_prefix
}

output "archive_manifest_table" {
  description = "Name of the archive's manifest table (ARCHIVE_MANIFEST_TABLE): per shard, how far it is archived and its committed segments."
  value       = module.archive_manifest_table.name
}

output "logs_bucket" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "ARN of the platform's KMS key."
  value       = aws_kms_key.platform.arn
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (subscribe your on-call tooling)."
  value       = aws_sns_topic.alarms.arn
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the services' own metrics."
  value       = var.metrics_namespace
}

output "ses_identity_arn" {
  description = "ARN of the notifier's SES identity."
  value       = aws_sesv2_email_identity.notifier.arn
}

output "ses_dkim_tokens" {
  description = "DKIM tokens of a domain identity: publish `<token>._domainkey.<domain>` CNAME `<token>.dkim.amazonses.com`."
  value       = try(aws_sesv2_email_identity.notifier.dkim_signing_attributes[0].tokens, [])
}

output "vpc_id" {
  description = "VPC of the deployment."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the tasks."
  value       = module.network.private_subnet_ids
}

output "nat_public_ips" {
  description = "Addresses third parties see the tasks' requests from (NAT), if any."
  value       = module.network.nat_public_ips
}
