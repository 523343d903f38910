output "vpc_id" {
  description = "ID of the VPC (created or existing)."
  value       = local.vpc_id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = local.vpc_cidr
}

output "private_subnet_ids" {
  description = "Private subnets where the tasks run."
  value       = local.private_subnet_ids
}

output "public_subnet_ids" {
  description = "Public subnets (for an internet-facing load balancer)."
  value       = local.public_subnet_ids
}

output "nat_public_ips" {
  description = "Public addresses of the NAT gateways (what third parties see), if any."
  value       = aws_eip.nat[*].public_ip
}

output "gateway_endpoint_ids" {
  description = "Gateway endpoint IDs by service (dynamodb, s3)."
  value       = { for service, endpoint in aws_vpc_endpoint.gateway : service => endpoint.id }
}

output "interface_endpoint_ids" {
  description = "Interface endpoint IDs by service."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}
