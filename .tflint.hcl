# TFLint configuration for terraform/ (used by .github/workflows/terraform.yml:
# `tflint --init` then `tflint --recursive`, both with `--config` pointing here).

config {
  # Lint the local modules through their calls too (variables as the root passes them).
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}

plugin "aws" {
  enabled = true
  version = "0.48.0"
  source  = "github.com/terraform-linters/tflint-ruleset-aws"
}

rule "terraform_documented_variables" {
  enabled = true
}

rule "terraform_documented_outputs" {
  enabled = true
}

rule "terraform_naming_convention" {
  enabled = true
}

rule "terraform_standard_module_structure" {
  enabled = true
}
