# Renamed addresses, so that a state written by an earlier version of this configuration is
# upgraded in place by the next plan and apply (nothing destroyed and recreated). Delete a block
# once every state it concerns has been applied with it.

# Every service had its own image repository before the one binary; event-source's is kept as
# the repository of the one image (the others are destroyed: delete their images first, see the
# README's teardown).
moved {
  from = aws_ecr_repository.service["event-source"]
  to   = aws_ecr_repository.quotes
}

moved {
  from = aws_ecr_lifecycle_policy.service["event-source"]
  to   = aws_ecr_lifecycle_policy.quotes
}

# The consumer services had one module block each before `module "consumer"` (services.tf).
moved {
  from = module.vehicle_enricher
  to   = module.consumer["vehicle-enricher"]
}

moved {
  from = module.driver_history
  to   = module.consumer["driver-history"]
}

moved {
  from = module.fulfillment
  to   = module.consumer["fulfillment"]
}

moved {
  from = module.projector
  to   = module.consumer["projector"]
}

moved {
  from = module.notifier
  to   = module.consumer["notifier"]
}

# The HTTPS listener became one of two (production's HTTPS, trial mode's HTTP).
moved {
  from = aws_lb_listener.https
  to   = aws_lb_listener.https[0]
}
