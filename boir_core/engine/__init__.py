"""boir_core.engine"""
