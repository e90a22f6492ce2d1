"""The test-time-training methods, one module each, named after its ttt.method value (golf/evaluate/ttt/method.py
imports them all and each registers itself)."""
