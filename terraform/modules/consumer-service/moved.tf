# Addresses renamed when the scaling resources became optional (`autoscaling`): an existing
# state keeps its scaling target, policies and alarms.
moved {
  from = aws_appautoscaling_target.this
  to   = aws_appautoscaling_target.this[0]
}

moved {
  from = aws_appautoscaling_policy.scale_out
  to   = aws_appautoscaling_policy.scale_out[0]
}

moved {
  from = aws_appautoscaling_policy.scale_in
  to   = aws_appautoscaling_policy.scale_in[0]
}

moved {
  from = aws_cloudwatch_metric_alarm.lag_high
  to   = aws_cloudwatch_metric_alarm.lag_high[0]
}

moved {
  from = aws_cloudwatch_metric_alarm.lag_low
  to   = aws_cloudwatch_metric_alarm.lag_low[0]
}

# The dead-letter alarm became optional (`dead_letter_alarm`).
moved {
  from = aws_cloudwatch_metric_alarm.dead_letters
  to   = aws_cloudwatch_metric_alarm.dead_letters[0]
}
