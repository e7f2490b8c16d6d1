"""Image sources and the review of new images (issue 14): who may edit an image's source,
the review requests with their automated checks, and the gate on candidate registrations."""
