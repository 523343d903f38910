# Renamed addresses, so that a state written by an earlier version of this configuration is
# upgraded in place by the next plan and apply (nothing destroyed and recreated). Delete a block
# once every state it concerns has been applied with it.

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
