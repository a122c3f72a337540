"""The verification suites (testinfra on pytest); run them with toolkit.verify.run_verify."""
