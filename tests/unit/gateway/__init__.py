"""Gateway tests: real HTTP through the gateway to echo upstreams."""
