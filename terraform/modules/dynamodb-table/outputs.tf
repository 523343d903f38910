output "name" {
  description = "Table name."
  value       = aws_dynamodb_table.this.name
}

output "arn" {
  description = "Table ARN (its indexes are `<arn>/index/<name>`)."
  value       = aws_dynamodb_table.this.arn
}

output "index_names" {
  description = "Names of the global secondary indexes."
  value       = [for index in var.global_secondary_indexes : index.name]
}

output "throttle_alarm_arn" {
  description = "ARN of the throttle alarm."
  value       = aws_cloudwatch_metric_alarm.throttles.arn
}
