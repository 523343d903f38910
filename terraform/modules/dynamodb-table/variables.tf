variable "name" {
  description = "Table name (the name the services read from their `*_TABLE` variable)."
  type        = string
}

variable "hash_key" {
  description = "Partition key attribute name."
  type        = string
}

variable "range_key" {
  description = "Sort key attribute name, or null for a table with a partition key only."
  type        = string
  default     = null
}

variable "attributes" {
  description = "Key attributes of the table and its indexes: name and type (S, N or B)."
  type = list(object({
    name = string
    type = string
  }))

  validation {
    condition     = alltrue([for a in var.attributes : contains(["S", "N", "B"], a.type)])
    error_message = "Attribute types are S, N or B."
  }
}

variable "global_secondary_indexes" {
  description = "Global secondary indexes: name, hash key, optional range key, projection type (ALL, KEYS_ONLY or INCLUDE with non_key_attributes)."
  type = list(object({
    name               = string
    hash_key           = string
    range_key          = optional(string)
    projection_type    = optional(string, "ALL")
    non_key_attributes = optional(list(string))
  }))
  default = []
}

variable "ttl_attribute" {
  description = "Attribute holding the expiry time (epoch seconds) for DynamoDB TTL, or null for no TTL."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the table."
  type        = string
}

variable "deletion_protection" {
  description = "Whether deletion protection is enabled."
  type        = bool
  default     = true
}

variable "replicas" {
  description = "Global Tables replicas: region and the KMS key (in that region) encrypting the replica. Empty for a single-region table."
  type = list(object({
    region_name = string
    kms_key_arn = string
  }))
  default = []
}

variable "throttle_alarm_threshold" {
  description = "Read plus write throttle events per period above which the throttle alarm fires."
  type        = number
  default     = 0
}

variable "alarm_period_seconds" {
  description = "Period of the throttle alarm's metric."
  type        = number
  default     = 300
}

variable "alarm_actions" {
  description = "ARNs notified when the throttle alarm changes state (e.g. an SNS topic)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
