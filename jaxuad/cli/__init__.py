"""Thin command lines: parse arguments, build the config, call one library function."""
