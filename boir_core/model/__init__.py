"""boir_core.model"""
