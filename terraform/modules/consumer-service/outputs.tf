output "service_name" {
  description = "Name of the ECS service."
  value       = module.service.service_name
}

output "task_role_arn" {
  description = "ARN of the task role."
  value       = module.service.task_role_arn
}

output "execution_role_arn" {
  description = "ARN of the execution role."
  value       = module.service.execution_role_arn
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = module.service.security_group_id
}

output "log_group_name" {
  description = "Log group of the service."
  value       = module.service.log_group_name
}

output "efo_consumer_arn" {
  description = "ARN of the enhanced fan-out consumer (null when polling)."
  value       = one(aws_kinesis_stream_consumer.this[*].arn)
}

output "dead_letter_alarm_arn" {
  description = "ARN of the dead-letter alarm (null with `dead_letter_alarm = false`)."
  value       = one(aws_cloudwatch_metric_alarm.dead_letters[*].arn)
}

output "blocked_shard_alarm_arn" {
  description = "ARN of the alarm on a shard waiting out a transient failure."
  value       = aws_cloudwatch_metric_alarm.blocked_shard.arn
}
