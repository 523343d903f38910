output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "service_id" {
  description = "ID (ARN) of the ECS service."
  value       = aws_ecs_service.this.id
}

output "autoscaling_resource_id" {
  description = "Application Auto Scaling resource ID of the service (`service/<cluster>/<service>`)."
  value       = "service/${split("/", var.cluster_arn)[1]}/${aws_ecs_service.this.name}"
}

output "task_definition_arn" {
  description = "ARN of the task definition (with revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "ARN of the task role (what the service's code may call)."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "Name of the task role."
  value       = aws_iam_role.task.name
}

output "execution_role_arn" {
  description = "ARN of the execution role (image pull, logs, secrets)."
  value       = aws_iam_role.execution.arn
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.this.id
}

output "log_group_name" {
  description = "Log group of the service and its collector."
  value       = aws_cloudwatch_log_group.this.name
}
