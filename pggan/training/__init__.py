"""Progressive training: options, presets, schedule, the step, the trainer, its log and timeline, DDP."""
