variable "name_prefix" {
  description = "Prefix of every resource name (the root module's `name_prefix`)."
  type        = string
  default     = ""
}
variable "service" {
  description = "Service name, e.g. `event-source`: the container runs `quotes run <service>`; the container, the ECS service and the log group are named after it."
  type        = string
}
variable "cluster_arn" {
  description = "ARN of the ECS cluster the service runs in."
  type        = string
}
variable "image" {
  description = "The `quotes` image (repository URL and tag); the container runs `quotes run <service>`."
  type        = string
}
variable "ecr_repository_arns" {
  description = "ECR repositories the execution role may pull from (the service's image and the collector's)."
  type        = list(string)
}
variable "ecr_pull_through_repository_arns" {
  description = "ECR pull-through cache repositories (patterns) the execution role may import on first pull."
  type        = list(string)
  default     = []
}
variable "cpu" {
  description = "Task CPU units (256, 512, 1024, …); the collector sidecar takes a small share."
  type        = number
  default     = 512
}
variable "memory" {
  description = "Task memory in MiB (valid for the chosen CPU)."
  type        = number
  default     = 1024
}
variable "cpu_architecture" {
  description = "CPU architecture of the images: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture is X86_64 or ARM64."
  }
}
variable "environment" {
  description = "Container environment: variable name → value. Null values are left out (the code's default applies)."
  type        = map(string)
  default     = {}
}
variable "secrets" {
  description = "Container secrets: variable name → Secrets Manager secret ARN (optionally with `:json-key::`) or SSM parameter ARN. Null values are left out."
  type        = map(string)
  default     = {}
}
variable "secrets_kms_key_arns" {
  description = "KMS keys encrypting the secrets (the execution role may decrypt with them)."
  type        = list(string)
  default     = []
}
variable "dynamodb_tables" {
  description = "Task role grants on DynamoDB, keyed by the variable naming the table: its ARN, the actions on the table, the actions on its indexes (`<arn>/index/*`), and with `suffixed_tables` the actions on the tables named `<table name>-<suffix>` (`<arn>-*`) and on their indexes (`<arn>-*/index/*`), e.g. the read model's blue/green tables."
  type = map(object({
    arn           = string
    actions       = list(string)
    index_actions = optional(list(string), [])
    suffixed_tables = optional(object({
      actions       = list(string)
      index_actions = optional(list(string), [])
    }))
  }))
  default = {}
}
variable "s3_buckets" {
  description = "Task role grants on S3, keyed by the variable naming the bucket (see fargate-service)."
  type = map(object({
    arn            = string
    prefix         = optional(string, "")
    bucket_actions = optional(list(string), [])
    object_actions = optional(list(string), [])
    kms_key_arn    = optional(string)
  }))
  default = {}
}
variable "ses_send" {
  description = "Allow `ses:SendEmail` from the identities in `ses_identity_arns`."
  type        = bool
  default     = false
}
variable "ses_identity_arns" {
  description = "SES identities the service may send from."
  type        = list(string)
  default     = []
}
variable "ses_from_address" {
  description = "The only From address the service may send with (IAM condition `ses:FromAddress`), or null."
  type        = string
  default     = null
}
variable "sns_publish" {
  description = "Allow `sns:Publish` to phone numbers only (SMS): allowed on every resource except SNS ARNs, and denied on topics and endpoints."
  type        = bool
  default     = false
}
variable "data_kms_key_arn" {
  description = "KMS key encrypting the tables and the stream; the task role uses it through DynamoDB and Kinesis only."
  type        = string
}
variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}
variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}
variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL (stopTimeout): long enough to finish requests, release leases and checkpoint. Fargate allows at most 120."
  type        = number
  default     = 90

  validation {
    condition     = var.stop_timeout >= 60 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 60 and 120 seconds."
  }
}
variable "log_retention_days" {
  description = "Retention of the service's log group, in days."
  type        = number
  default     = 365
}
variable "log_kms_key_arn" {
  description = "KMS key encrypting the service's log group."
  type        = string
}
variable "adot_image" {
  description = "Image of the AWS Distro for OpenTelemetry collector sidecar."
  type        = string
}
variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics the collector writes as EMF."
  type        = string
}
variable "metrics_log_group_name" {
  description = "Log group the collector writes EMF metrics to."
  type        = string
}
variable "metrics_log_group_arn" {
  description = "ARN of `metrics_log_group_name`."
  type        = string
}
variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "stream_name" {
  description = "Name of the Kinesis stream the service consumes (and publishes derived events to)."
  type        = string
}

variable "stream_arn" {
  description = "ARN of that stream."
  type        = string
}

variable "consumer_source" {
  description = "How the service reads the stream: `polling` (GetRecords) or `fanout` (enhanced fan-out; this module registers the consumer). Must match the service's CONSUMER_SOURCE."
  type        = string
  default     = "polling"

  validation {
    condition     = contains(["polling", "fanout"], var.consumer_source)
    error_message = "consumer_source is polling or fanout."
  }
}

variable "efo_consumer_name" {
  description = "Name of the enhanced fan-out consumer (the service's EFO_CONSUMER_NAME; its default is the service name)."
  type        = string
  default     = null
}

variable "stream_actions" {
  description = "Task role actions on the stream in both modes (e.g. ListShards, and PutRecords for the relay)."
  type        = list(string)
  default     = []
}

variable "stream_polling_actions" {
  description = "Task role actions on the stream granted only with `consumer_source = polling`."
  type        = list(string)
  default     = []
}

variable "stream_fanout_actions" {
  description = "Task role actions on the stream granted only with `consumer_source = fanout`."
  type        = list(string)
  default     = []
}

variable "efo_consumer_actions" {
  description = "Task role actions on the enhanced fan-out consumer, granted only with `consumer_source = fanout`."
  type        = list(string)
  default     = []
}

variable "min_tasks" {
  description = "Fewest tasks (also the count the service starts with)."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1."
  }
}

variable "max_tasks" {
  description = "Most tasks. A task without a shard lease idles, so it must not exceed `shard_count`."
  type        = number
  default     = 2
}

variable "shard_count" {
  description = "Shards of the stream (for an on-demand stream, the expected count). Bounds `max_tasks`."
  type        = number
}

variable "autoscaling" {
  description = "Scale the service on its lag between `min_tasks` and `max_tasks` (Application Auto Scaling). False: a fixed `min_tasks` tasks, no scaling target, policies or lag alarms."
  type        = bool
  default     = true
}

variable "scale_out_lag_ms" {
  description = "Scale out by one task while the lag (iterator age, or MillisBehindLatest with fan-out) stays above this many milliseconds."
  type        = number
  default     = 60000
}

variable "scale_in_lag_ms" {
  description = "Scale in by one task while the lag stays below this many milliseconds (idle streams count as below)."
  type        = number
  default     = 5000
}

variable "lag_alarm_ms" {
  description = "Alarm when this consumer's fan-out lag (SubscribeToShardEvent.MillisBehindLatest) exceeds this many milliseconds (fan-out only; polling consumers share the stream's iterator-age alarm)."
  type        = number
  default     = 300000
}

variable "dead_letter_alarm" {
  description = "Alarm on the records the service dead-letters (`kinesis_consumer.dead_lettered`). False for a service that dead-letters nothing (a record service such as the archiver, whose failures are retried until they pass)."
  type        = bool
  default     = true
}

variable "dead_letter_alarm_threshold" {
  description = "Alarm when more records than this are dead-lettered in 5 minutes."
  type        = number
  default     = 0
}

variable "blocked_shard_alarm_seconds" {
  description = "Alarm when a shard has been waiting out a transient failure (kinesis_consumer.shard_blocked_seconds) for more than this many seconds."
  type        = number
  default     = 300
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm changes state."
  type        = list(string)
  default     = []
}
