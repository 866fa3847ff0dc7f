"""Data shipped inside the package: the body model (``body/``), the ETH/UCY pedestrian data (``eth_ucy/``)
and the pretrained weights with their cards (``weights/``, read through :mod:`geomanip.weights`)."""
