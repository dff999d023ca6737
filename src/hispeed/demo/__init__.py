"""The course's scenarios: data generators, simulated devices and the demo `make run` shows."""
