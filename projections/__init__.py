"""Pure folds from journey events to views, and the batched runner that keeps views current."""
