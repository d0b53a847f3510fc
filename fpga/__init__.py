"""FPGA flows: open-tool synthesis and place-and-route (``synth``, ``synthtop``, ``sweep``,
``baseline``), board tops and bitstreams (``boardtop``, ``boards``), and the UART host link
(``uart``, ``protocol``, ``linkcore``, ``linktop``, ``hostlink``, ``simboard``)."""
