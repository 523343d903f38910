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

variable "desired_count" {
  description = "Tasks started with the service (autoscaling changes it afterwards)."
  type        = number
  default     = 1
}

variable "container_port" {
  description = "Port the service listens on (its LISTEN_ADDR)."
  type        = number
  default     = 8080
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
  description = "Task role grants on DynamoDB, keyed by the variable naming the table (or `VARIABLE[<entry>]` for one of several tables it names, e.g. `OPS_APPLICATIONS[projector]`; statement ids keep the key's letters and digits): its ARN, the actions on the table, the actions on its indexes (`<arn>/index/*`), and with `suffixed_tables` the actions on the tables named `<table name>-<suffix>` (`<arn>-*`) and on their indexes (`<arn>-*/index/*`), e.g. the read model's blue/green tables."
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
  description = "Task role grants on S3, keyed by the variable naming the bucket: its ARN, the key prefix of the service's objects, `bucket_actions` on the bucket (e.g. `s3:ListBucket`, which HeadBucket and ListObjectsV2 need) and `object_actions` on `<arn>/<prefix>*`; with `kms_key_arn` (a bucket encrypted with SSE-KMS), the key through S3 only: `kms:GenerateDataKey` and `kms:Decrypt` to write objects, `kms:Decrypt` to read them."
  type = map(object({
    arn            = string
    prefix         = optional(string, "")
    bucket_actions = optional(list(string), [])
    object_actions = optional(list(string), [])
    kms_key_arn    = optional(string)
  }))
  default = {}

  validation {
    condition = alltrue([
      for bucket in values(var.s3_buckets) :
      alltrue([for action in concat(bucket.bucket_actions, bucket.object_actions) : startswith(action, "s3:") && !strcontains(action, "*")])
    ])
    error_message = "S3 grants name s3: actions, without wildcards."
  }
}

variable "stream_arn" {
  description = "ARN of the Kinesis stream the service uses."
  type        = string
  default     = null
}

variable "stream_actions" {
  description = "Task role actions on the Kinesis stream."
  type        = list(string)
  default     = []
}

variable "efo_consumer_arn" {
  description = "ARN (or ARN pattern) of the enhanced fan-out consumer the service reads through."
  type        = string
  default     = null
}

variable "efo_consumer_actions" {
  description = "Task role actions on the enhanced fan-out consumer (empty when polling)."
  type        = list(string)
  default     = []
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

variable "load_balancer" {
  description = "Target group the service registers in, and the load balancer's security group allowed to reach the container port; null for a service without a load balancer."
  type = object({
    target_group_arn  = string
    security_group_id = string
  })
  default = null
}

variable "service_dependencies" {
  description = "Values (ARNs, ids) of what the ECS service must be created after, e.g. the load balancer's listener or an enhanced fan-out consumer. Only the service waits for them: use this instead of `depends_on` on the module, which would defer the module's data sources (and replace its task definition) whenever anything upstream changes."
  type        = list(string)
  default     = []
}

variable "health_check_grace_period_seconds" {
  description = "Seconds the load balancer's health checks are ignored after a task starts."
  type        = number
  default     = 30
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

variable "autoscaling" {
  description = "CPU target tracking (min and max tasks, target average CPU %), or null for a fixed task count."
  type = object({
    min_tasks          = number
    max_tasks          = number
    cpu_target_percent = optional(number, 60)
  })
  default = null
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
