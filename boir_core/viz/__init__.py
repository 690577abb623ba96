"""boir_core.viz"""
