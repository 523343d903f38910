data "aws_region" "current" {}

locals {
  name = "${var.name_prefix}${var.service}"

  # Null values stand for "not configured": the code's default applies.
  environment = { for name, value in var.environment : name => value if value != null }
  secrets     = { for name, value in var.secrets : name => value if value != null }

  # The resource of a secret reference: a Secrets Manager ARN without its `:json-key:stage:version`
  # suffix (7 fields), or an SSM parameter ARN as it is.
  secret_arns = distinct([
    for value in values(local.secrets) :
    startswith(value, "arn:") && split(":", value)[2] == "secretsmanager" ? join(":", slice(split(":", value), 0, 7)) : value
  ])
  secretsmanager_arns = [for arn in local.secret_arns : arn if split(":", arn)[2] == "secretsmanager"]
  ssm_parameter_arns  = [for arn in local.secret_arns : arn if split(":", arn)[2] == "ssm"]

  # What S3 asks KMS for on the service's behalf, per bucket encrypted with a customer managed
  # key: to write an object, a data key and (multipart uploads, S3 Bucket Keys) a decryption, as
  # AWS documents for SSE-KMS uploads; to read one, a decryption.
  s3_kms_grants = {
    for variable, bucket in var.s3_buckets : variable => {
      kms_key_arn = bucket.kms_key_arn
      kms_actions = distinct(concat(
        contains(bucket.object_actions, "s3:PutObject") ? ["kms:GenerateDataKey", "kms:Decrypt"] : [],
        contains(bucket.object_actions, "s3:GetObject") ? ["kms:Decrypt"] : [],
      ))
    } if bucket.kms_key_arn != null
  }

  # The grants on the tables named `<table name>-<suffix>`, per table that has some, with the
  # table's ARN (`dynamodb_tables[*].suffixed_tables`).
  suffixed_table_grants = {
    for variable, table in var.dynamodb_tables : variable => {
      arn           = table.arn
      actions       = table.suffixed_tables.actions
      index_actions = table.suffixed_tables.index_actions
    } if table.suffixed_tables != null
  }

  collector_name = "adot-collector"

  # The collector receives OTLP/HTTP from the service on the task's loopback, sends traces to
  # X-Ray and metrics to CloudWatch as EMF (cumulative counters become deltas there): the
  # consumer library's `kinesis_consumer.*` by application (and shard), the relay's
  # `event_relay.*` by application, the API's request durations by route and method. Other
  # metrics are dropped.
  collector_config = yamlencode({
    extensions = {
      health_check = { endpoint = "127.0.0.1:13133" }
    }
    receivers = {
      otlp = { protocols = { http = { endpoint = "127.0.0.1:4318" } } }
    }
    processors = {
      "batch/traces"    = { timeout = "1s", send_batch_size = 50 }
      "batch/metrics"   = { timeout = "60s" }
      resourcedetection = { detectors = ["env", "ecs"], timeout = "2s", override = false }
    }
    exporters = {
      awsxray = { index_all_attributes = false }
      awsemf = {
        namespace               = var.metrics_namespace
        log_group_name          = var.metrics_log_group_name
        log_stream_name         = "${var.service}/{TaskId}"
        dimension_rollup_option = "NoDimensionRollup"
        # A new task's first counter value is a delta too (a record dead-lettered before the
        # first export still counts).
        retain_initial_value_of_delta_metric = true
        metric_declarations = [
          {
            dimensions            = [["application"], ["application", "shard_id"], ["application", "kind"]]
            metric_name_selectors = ["^kinesis_consumer\\..*$"]
          },
          {
            dimensions            = [["application"]]
            metric_name_selectors = ["^event_relay\\..*$"]
          },
          {
            dimensions            = [["http.route", "http.request.method"]]
            metric_name_selectors = ["^http\\.server\\.request\\.duration$"]
          },
        ]
      }
    }
    service = {
      extensions = ["health_check"]
      pipelines = {
        traces = {
          receivers  = ["otlp"]
          processors = ["resourcedetection", "batch/traces"]
          exporters  = ["awsxray"]
        }
        metrics = {
          receivers  = ["otlp"]
          processors = ["resourcedetection", "batch/metrics"]
          exporters  = ["awsemf"]
        }
      }
    }
  })

  log_options = {
    awslogs-group         = aws_cloudwatch_log_group.this.name
    awslogs-region        = data.aws_region.current.name
    mode                  = "non-blocking"
    max-buffer-size       = "4m"
    awslogs-stream-prefix = var.service
  }

  service_container = {
    name                   = var.service
    image                  = var.image
    command                = ["run", var.service]
    essential              = true
    readonlyRootFilesystem = true
    stopTimeout            = var.stop_timeout
    portMappings = [{
      name          = "http"
      containerPort = var.container_port
      protocol      = "tcp"
    }]
    environment = [for name in sort(keys(local.environment)) : { name = name, value = local.environment[name] }]
    secrets     = [for name in sort(keys(local.secrets)) : { name = name, valueFrom = local.secrets[name] }]
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/quotes", "healthcheck"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 15
    }
    # Started after the collector and stopped before it, so its last spans are delivered.
    dependsOn = [{ containerName = local.collector_name, condition = "START" }]
    logConfiguration = {
      logDriver = "awslogs"
      options   = local.log_options
    }
  }

  collector_container = {
    name                   = local.collector_name
    image                  = var.adot_image
    essential              = false
    readonlyRootFilesystem = true
    memoryReservation      = 128
    stopTimeout            = 30
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config }]
    mountPoints            = [{ sourceVolume = "collector-tmp", containerPath = "/tmp", readOnly = false }]
    healthCheck = {
      command     = ["CMD", "/healthcheck"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }
    logConfiguration = {
      logDriver = "awslogs"
      options   = merge(local.log_options, { awslogs-stream-prefix = local.collector_name })
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${local.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Roles: the execution role starts the task (pull, logs, secrets); the task role is what the
# service's code (and its collector) may call.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${substr(local.name, 0, 26)}-exec-"
  description        = "Starts ${local.name} tasks: image pull, logs, secrets."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = concat(var.ecr_repository_arns, var.ecr_pull_through_repository_arns)
  }

  dynamic "statement" {
    for_each = length(var.ecr_pull_through_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullThroughCache"
      actions   = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
      resources = var.ecr_pull_through_repository_arns
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.secretsmanager_arns) > 0 ? [1] : []
    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secretsmanager_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.ssm_parameter_arns) > 0 ? [1] : []
    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameters"]
      resources = local.ssm_parameter_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = var.secrets_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name_prefix        = "${substr(local.name, 0, 26)}-task-"
  description        = "What ${local.name} may call: its tables, the stream, and telemetry."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "task" {
  # Statement ids are the key's letters and digits (`OPS_APPLICATIONS[projector]` →
  # `TableOPSAPPLICATIONSprojector`): IAM allows nothing else in a Sid.
  dynamic "statement" {
    for_each = var.dynamodb_tables
    content {
      sid       = "Table${replace(statement.key, "/[^0-9A-Za-z]/", "")}"
      actions   = statement.value.actions
      resources = [statement.value.arn]
    }
  }

  dynamic "statement" {
    for_each = { for variable, table in var.dynamodb_tables : variable => table if length(table.index_actions) > 0 }
    content {
      sid       = "Indexes${replace(statement.key, "/[^0-9A-Za-z]/", "")}"
      actions   = statement.value.index_actions
      resources = ["${statement.value.arn}/index/*"]
    }
  }

  # The tables named `<table name>-<suffix>` (`suffixed_tables`) and their indexes: `-*`, not
  # `*`, so that another table whose name merely begins with this one's (`customer-quotes2`) is
  # never granted.
  dynamic "statement" {
    for_each = { for variable, table in local.suffixed_table_grants : variable => table if length(table.actions) > 0 }
    content {
      sid       = "SuffixedTables${replace(statement.key, "/[^0-9A-Za-z]/", "")}"
      actions   = statement.value.actions
      resources = ["${statement.value.arn}-*"]
    }
  }

  dynamic "statement" {
    for_each = { for variable, table in local.suffixed_table_grants : variable => table if length(table.index_actions) > 0 }
    content {
      sid       = "SuffixedIndexes${replace(statement.key, "/[^0-9A-Za-z]/", "")}"
      actions   = statement.value.index_actions
      resources = ["${statement.value.arn}-*/index/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.stream_actions) > 0 ? [1] : []
    content {
      sid       = "Stream"
      actions   = var.stream_actions
      resources = [var.stream_arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.efo_consumer_actions) > 0 ? [1] : []
    content {
      sid       = "FanOutConsumer"
      actions   = var.efo_consumer_actions
      resources = [var.efo_consumer_arn]
    }
  }

  dynamic "statement" {
    for_each = var.ses_send ? [1] : []
    content {
      sid       = "SendEmail"
      actions   = ["ses:SendEmail"]
      resources = var.ses_identity_arns

      dynamic "condition" {
        for_each = var.ses_from_address == null ? [] : [var.ses_from_address]
        content {
          test     = "StringEquals"
          variable = "ses:FromAddress"
          values   = [condition.value]
        }
      }
    }
  }

  dynamic "statement" {
    for_each = var.sns_publish ? [1] : []
    content {
      # SMS straight to a phone number is authorised on no resource ARN; a topic or a platform
      # endpoint is an `arn:<partition>:sns:…` ARN. Allowing Publish on everything *but* SNS ARNs
      # lets the notifier text a phone number and publish to no topic (AWS's pattern for
      # "SMS only"); the deny below keeps it so whatever else is attached to the role.
      sid           = "SendSmsOnly"
      actions       = ["sns:Publish"]
      not_resources = ["arn:*:sns:*:*:*"]
    }
  }

  dynamic "statement" {
    for_each = var.sns_publish ? [1] : []
    content {
      sid       = "NoTopicPublish"
      effect    = "Deny"
      actions   = ["sns:Publish"]
      resources = ["arn:*:sns:*:*:*"]
    }
  }

  dynamic "statement" {
    for_each = { for variable, bucket in var.s3_buckets : variable => bucket if length(bucket.bucket_actions) > 0 }
    content {
      sid       = "Bucket${replace(statement.key, "_", "")}"
      actions   = statement.value.bucket_actions
      resources = [statement.value.arn]
    }
  }

  dynamic "statement" {
    for_each = { for variable, bucket in var.s3_buckets : variable => bucket if length(bucket.object_actions) > 0 }
    content {
      sid       = "Objects${replace(statement.key, "_", "")}"
      actions   = statement.value.object_actions
      resources = ["${statement.value.arn}/${statement.value.prefix}*"]
    }
  }

  # A bucket encrypted with a customer managed key: the key through S3 only.
  dynamic "statement" {
    for_each = { for variable, grant in local.s3_kms_grants : variable => grant if length(grant.kms_actions) > 0 }
    content {
      sid       = "DataKeyThroughS3${replace(statement.key, "_", "")}"
      actions   = statement.value.kms_actions
      resources = [statement.value.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  # Tables and stream are encrypted with the platform key: allowed through those services only.
  statement {
    sid = "DataKeyThroughDynamoDbAndKinesis"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.data_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${data.aws_region.current.name}.amazonaws.com",
        "kinesis.${data.aws_region.current.name}.amazonaws.com",
      ]
    }
  }

  # The collector sidecar: traces to X-Ray, metrics as EMF to one log group.
  statement {
    sid = "CollectorTraces"
    actions = [
      "xray:GetSamplingRules",
      "xray:GetSamplingStatisticSummaries",
      "xray:GetSamplingTargets",
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ]
    resources = ["*"]
  }

  statement {
    sid = "CollectorMetrics"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [var.metrics_log_group_arn, "${var.metrics_log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "service-calls"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---------------------------------------------------------------------------------------------
# Task definition and service
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-local scratch space for the collector (its root file system is read-only).
  volume {
    name = "collector-tmp"
  }

  container_definitions = jsonencode([local.service_container, local.collector_container])

  tags = var.tags
}

resource "aws_security_group" "this" {
  name_prefix = "${local.name}-"
  description = "${local.name} tasks: HTTPS out (VPC endpoints and third parties)."
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS to the VPC endpoints and third-party APIs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.tags, { Name = local.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_load_balancer" {
  count = var.load_balancer == null ? 0 : 1

  security_group_id            = aws_security_group.this.id
  description                  = "HTTP from the load balancer"
  referenced_security_group_id = var.load_balancer.security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port

  tags = var.tags
}

# What the service must start after (the load balancer's listener, an enhanced fan-out
# consumer), passed in as values rather than as `depends_on` on the module: a module-level
# `depends_on` defers every data source of the module whenever anything upstream changes, so a
# stream's retention or a table's setting would then replace the task definition and update
# the roles. Only the ECS service waits for these.
resource "terraform_data" "service_dependencies" {
  input = var.service_dependencies
}

resource "aws_ecs_service" "this" {
  name                               = local.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.autoscaling == null ? var.desired_count : var.autoscaling.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  health_check_grace_period_seconds  = var.load_balancer == null ? null : var.health_check_grace_period_seconds

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = var.load_balancer == null ? [] : [var.load_balancer]
    content {
      target_group_arn = load_balancer.value.target_group_arn
      container_name   = var.service
      container_port   = var.container_port
    }
  }

  tags = var.tags

  lifecycle {
    # Autoscaling owns the task count once the service exists.
    ignore_changes = [desired_count]
  }

  depends_on = [terraform_data.service_dependencies]
}

# ---------------------------------------------------------------------------------------------
# CPU autoscaling (the API); consumer services scale on their lag instead
# ---------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "cpu" {
  count = var.autoscaling == null ? 0 : 1

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${split("/", var.cluster_arn)[1]}/${aws_ecs_service.this.name}"
  min_capacity       = var.autoscaling.min_tasks
  max_capacity       = var.autoscaling.max_tasks

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.autoscaling.min_tasks <= var.autoscaling.max_tasks
      error_message = "autoscaling.min_tasks must not exceed autoscaling.max_tasks."
    }
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  count = var.autoscaling == null ? 0 : 1

  name               = "${local.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.cpu[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.cpu[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.cpu[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
