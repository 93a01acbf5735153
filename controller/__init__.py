"""etlctl: kubetl's command line for runs on Kubernetes."""
