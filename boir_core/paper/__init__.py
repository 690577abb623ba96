"""boir_core.paper"""
