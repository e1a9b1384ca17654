"""Contracts and plumbing every Tongxin service (and outside publisher) shares."""
