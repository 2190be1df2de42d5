"""Outbound services: every HTTP call heihei makes to someone else, each behind a small interface."""
