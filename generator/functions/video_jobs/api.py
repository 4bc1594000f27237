"""Video API handler with job records (being written; generator/functions/video_api.py serves until then)."""


def lambda_handler(event, context):
    raise NotImplementedError("the job-control API is being written")
