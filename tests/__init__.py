"""Test suite for FastSlow."""
