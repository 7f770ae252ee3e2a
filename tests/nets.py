"""INI texts several test modules share (importable: pytest puts tests/ on sys.path)."""

# One pruned Fc cell, Static at 0.4; {extra} is the line of the first extra key (13).
FC_STATIC = """
[sp]
SizeX=4
SizeY=1
NbChannels=1
[fc]
Input=sp
Type=Fc
NbOutputs=5
QWeight=Prune
QWeight.PruningMode=Static
QWeight.Threshold=0.4
{extra}
[fc.Target]
"""

# One Fc cell of 8 inputs pruned by Magnitude to 0.5 (mode: N2D2's default Identity unless
# {extra} says); {extra} is the line of the first extra key (13).
FC8_MAGNITUDE = """
[sp]
SizeX=8
SizeY=1
NbChannels=1
[fc]
Input=sp
Type=Fc
NbOutputs=4
QWeight=Prune
QWeight.PruningFiller=Magnitude
QWeight.Threshold=0.5
{extra}
[fc.Target]
"""
