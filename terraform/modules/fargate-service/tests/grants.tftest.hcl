# `terraform test` of the module's DynamoDB grants with a mocked AWS provider (no account
# needed): the statements of the task role's policy document as the module renders them.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock"
    }
  }

  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1"
    }
  }
}

variables {
  service                = "event-source"
  cluster_arn            = "arn:aws:ecs:us-east-1:123456789012:cluster/quote-platform"
  image                  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/quote-platform/quotes:test"
  ecr_repository_arns    = ["arn:aws:ecr:us-east-1:123456789012:repository/quote-platform/quotes"]
  data_kms_key_arn       = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  log_kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  vpc_id                 = "vpc-0123456789abcdef0"
  subnet_ids             = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  adot_image             = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
  metrics_namespace      = "QuotePlatform"
  metrics_log_group_name = "/quote-platform/metrics"
  metrics_log_group_arn  = "arn:aws:logs:us-east-1:123456789012:log-group:/quote-platform/metrics"

  dynamodb_tables = {
    READ_MODEL_TABLE = {
      arn           = "arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-customer-quotes"
      actions       = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"]
      index_actions = ["dynamodb:Query"]
      suffixed_tables = {
        actions       = ["dynamodb:DescribeTable", "dynamodb:Query"]
        index_actions = ["dynamodb:Query"]
      }
    }
    EVENTS_TABLE = {
      arn     = "arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-quote-events"
      actions = ["dynamodb:GetItem"]
    }
  }
}

run "suffixed_tables" {
  command = plan

  assert {
    # (jsonencode: the same values compare equal whatever their list, set or tuple types.)
    condition = jsonencode({
      for s in data.aws_iam_policy_document.task.statement : s.sid => [sort(s.actions), sort(s.resources)]
      if s.sid != null && can(regex("READMODELTABLE$", s.sid))
      }) == jsonencode({
      TableREADMODELTABLE           = [["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-customer-quotes"]]
      IndexesREADMODELTABLE         = [["dynamodb:Query"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-customer-quotes/index/*"]]
      SuffixedTablesREADMODELTABLE  = [["dynamodb:DescribeTable", "dynamodb:Query"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-customer-quotes-*"]]
      SuffixedIndexesREADMODELTABLE = [["dynamodb:Query"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-customer-quotes-*/index/*"]]
    })
    error_message = "The read model's grants cover the home table, its indexes, the tables named <table>-<suffix> (never <table>*) and their indexes, each with its own actions."
  }

  assert {
    condition     = length([for s in data.aws_iam_policy_document.task.statement : s if s.sid != null && can(regex("EVENTSTABLE$", s.sid))]) == 1
    error_message = "A table without suffixed_tables (or indexes) gets its one statement on the table itself."
  }
}

# A bucket the service only reads (a catch-up reader of the archive): GetObject under the prefix,
# the bucket's key for decryption through S3, no statement on the bucket itself.
run "read_only_bucket" {
  command = plan

  variables {
    s3_buckets = {
      ARCHIVE_BUCKET = {
        arn            = "arn:aws:s3:::quotes-prod-archive"
        prefix         = "events/"
        object_actions = ["s3:GetObject"]
        kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
      }
    }
  }

  assert {
    condition = jsonencode({
      for s in data.aws_iam_policy_document.task.statement : s.sid => [sort(s.actions), sort(s.resources)]
      if s.sid != null && can(regex("ARCHIVEBUCKET$", s.sid))
      }) == jsonencode({
      ObjectsARCHIVEBUCKET          = [["s3:GetObject"], ["arn:aws:s3:::quotes-prod-archive/events/*"]]
      DataKeyThroughS3ARCHIVEBUCKET = [["kms:Decrypt"], ["arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"]]
    })
    error_message = "A read-only bucket grant is GetObject on <arn>/<prefix>* and kms:Decrypt on its key (through S3), nothing on the bucket."
  }
}

# A variable naming several tables (event-source's OPS_APPLICATIONS: the lease table of each
# consumer application its operations view reads) keys one grant per table,
# `VARIABLE[<entry>]`; the statement ids keep the key's letters and digits only, as IAM requires.
run "one_of_several_tables" {
  command = plan

  variables {
    dynamodb_tables = {
      "OPS_APPLICATIONS[vehicle-enricher]" = {
        arn     = "arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-vehicle-enricher-leases"
        actions = ["dynamodb:Scan"]
      }
      "OPS_APPLICATIONS[projector]" = {
        arn     = "arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-projector-leases"
        actions = ["dynamodb:Scan"]
      }
    }
  }

  assert {
    condition = jsonencode({
      for s in data.aws_iam_policy_document.task.statement : s.sid => [sort(s.actions), sort(s.resources)]
      if s.sid != null && can(regex("OPSAPPLICATIONS", s.sid))
      }) == jsonencode({
      TableOPSAPPLICATIONSprojector       = [["dynamodb:Scan"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-projector-leases"]]
      TableOPSAPPLICATIONSvehicleenricher = [["dynamodb:Scan"], ["arn:aws:dynamodb:us-east-1:123456789012:table/quotes-prod-vehicle-enricher-leases"]]
    })
    error_message = "One statement per table, on that table only (no indexes), its id the key's letters and digits."
  }
}
