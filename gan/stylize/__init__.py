"""Neural style transfer by optimisation (Gatys et al.), colour preservation, and feed-forward stylization with
a content + style network (optimise)."""
