"""Networks that MONAI lacks. The current bundles use MONAI networks directly."""
