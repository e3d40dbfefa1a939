"""Training networks on in-memory images, below both the objectives and the engine.

    loop.py     THE training loop (single / stacked), the lr schedules and the seeded network constructor
    device.py   numeric settings of the device passes (TF32, cudnn.benchmark, memory format, autocast)

Nothing is imported here, so importing one of these modules does not pull in the others.
"""
