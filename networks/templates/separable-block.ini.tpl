; A MobileNet depthwise-separable block: 3x3 depthwise conv (one group per channel), then a
; 1x1 pointwise conv (pruned, from the includer's [prune_def]). Parameters: INPUT, NB_CHANNELS (input width), NB_FILTERS, STRIDE.

[{{SECTION_NAME}}_dw] conv_def
Input={{INPUT}}
KernelDims=3 3
Padding=1
Stride={{STRIDE}}
NbOutputs={{NB_CHANNELS}}
Mapping.ChannelsPerGroup=1

[{{SECTION_NAME}}_pw] prune_def
Input={{SECTION_NAME}}_dw
KernelDims=1 1
NbOutputs={{NB_FILTERS}}
