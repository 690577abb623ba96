"""boir_core.losses"""
