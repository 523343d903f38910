variable "name" {
  description = "Name prefix of the network resources (e.g. `quote-platform`)."
  type        = string
}

variable "create_vpc" {
  description = "Create a VPC (true) or use the existing one given by `vpc_id` (false)."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "ID of an existing VPC (used when `create_vpc` is false)."
  type        = string
  default     = null
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC; public subnets get /24s at its start, private subnets /20s after them."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of size /16 or larger."
  }
}

variable "az_count" {
  description = "Availability zones spanned by the created VPC (one public and one private subnet in each)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4 (an ALB needs two zones)."
  }
}

variable "availability_zones" {
  description = "Zones of the created VPC, pinned by name (e.g. [\"us-east-1a\", \"us-east-1b\"]); empty: the first `az_count` zones of the region."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) >= 2
    error_message = "Pin at least two availability zones (an ALB needs two)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the existing VPC where the tasks run (used when `create_vpc` is false)."
  type        = list(string)
  default     = []
}

variable "public_subnet_ids" {
  description = "Public subnets of the existing VPC for an internet-facing load balancer (used when `create_vpc` is false)."
  type        = list(string)
  default     = []
}

variable "private_route_table_ids" {
  description = "Route tables of the existing private subnets, for the DynamoDB and S3 gateway endpoints (used when `create_vpc` is false)."
  type        = list(string)
  default     = []
}

variable "enable_nat_gateway" {
  description = "Give the created private subnets internet egress through NAT gateways. AWS traffic goes through the VPC endpoints either way; NAT is for third parties (vPIC, a JWKS URL, a driver-record provider, SES)."
  type        = bool
  default     = true
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (survives a zone outage)."
  type        = bool
  default     = true
}

variable "create_vpc_endpoints" {
  description = "Create the gateway endpoints (DynamoDB, S3) and the interface endpoints listed in `interface_endpoints`."
  type        = bool
  default     = true
}

variable "interface_endpoints" {
  description = "AWS services reached through interface endpoints (the part after `com.amazonaws.<region>.`)."
  type        = list(string)
  default     = ["kinesis-streams", "ecr.api", "ecr.dkr", "logs", "xray", "secretsmanager", "sns"]
}

variable "enable_flow_log" {
  description = "Record the VPC's traffic (REJECT and ACCEPT) in a CloudWatch log group."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the flow log group, in days."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key encrypting the flow log group."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
