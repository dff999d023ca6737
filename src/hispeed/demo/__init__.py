"""The course's scenarios: data generators, simulated devices and the scenarios' SQL.

The demo app that `make run` starts (server, Redis, scenarios, devices) is
`hispeed.cli.demo_app`, beside the command that starts it.
"""
